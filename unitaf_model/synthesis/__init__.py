"""Synthesis: audio -> face (animate), text -> speech + face (speak), and the IndexTTS2
synthesis loop."""
