"""The UniTAF model and its training (projector, UniTalker decoder, TTS backbones, losses)."""
