"""Augmentation where features are made (`extract-features --augment N`) and the training
loader that samples from clean clips and their augmented copies."""

import numpy as np
import pytest

from unitaf_data.conditions import Conditions, apply_conditions, make_noise
from unitaf_data.dataset import Dataset, remove_feature_set, write_json
from unitaf_data.extract import extract_shard, feature_info
from unitaf_data.features import ExtractSettings
from unitaf_data.features.augment import (
    AugmentSettings,
    augment_clip,
    copy_fields,
    copy_phones,
    copy_timing,
)
from unitaf_data.phones import phone_frames
from unitaf_data.schema import Phone
from unitaf_data.testing import write_dummy_dataset
from unitaf_model.training.config import load_config
from unitaf_model.training.data import augment_settings, joined_samples

SETS = ["whisper", "utterance", "whisper_aug"]
FPS = 30.0


def _clip(seconds: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like audio (a tone burst in the middle) and a face whose jaw follows it."""
    rng = np.random.default_rng(seed)
    frames = round(seconds * FPS)
    audio = np.zeros(round(frames * 16000 / FPS), np.float32)
    audio[8000:24000] = 0.3 * np.sin(np.arange(16000) * 0.2) + 0.01 * rng.normal(size=16000)
    face = np.zeros((frames, 51), np.float32)
    face[:, 0] = np.linspace(0, 1, frames)  # a ramp: shows how the face was moved
    return audio, face


def test_a_copy_keeps_the_clip_length_and_rests_the_face_in_its_inserted_lead():
    audio, face = _clip()
    settings = AugmentSettings(copies=1, lead_share=1.0, speed_share=0.0, noise_share=0.0)
    copy = augment_clip(audio, face, FPS, "k", 0, settings)
    assert copy.audio.shape == audio.shape and copy.face.shape == face.shape
    lead = round(copy.lead_s * FPS)
    assert 0.3 <= copy.lead_s <= 1.5 and lead > 0
    assert np.array_equal(copy.face[:lead], np.repeat(face[:1], lead, 0))
    assert np.array_equal(copy.face[lead:], face[: len(face) - lead])  # moved, not changed
    assert not np.abs(copy.audio[: round(copy.lead_s * 16000) - 1]).any()  # silent: no noise


def test_a_faster_copy_resamples_the_face_by_the_same_factor():
    audio, face = _clip()
    settings = AugmentSettings(copies=8, lead_share=0.0, speed_share=1.0, noise_share=0.0)
    copies = [augment_clip(audio, face, FPS, "k", c, settings) for c in range(8)]
    fast = max(copies, key=lambda c: c.speed)
    assert fast.speed > 1.02
    frames = round(len(face) / fast.speed)
    # the ramp now climbs faster; past the sped-up clip, the face rests at its first frame
    assert np.allclose(np.diff(fast.face[1:frames - 1, 0]).mean(),
                       np.diff(face[:, 0]).mean() * fast.speed, rtol=0.05)
    assert np.allclose(fast.face[frames + 1:, 0], face[0, 0])


def test_a_copys_phones_land_where_its_face_plays_them():
    audio, face = _clip()
    face[24:27, 1] = 1.0  # the face marks an /m/ over 0.8-0.9 s
    phone = Phone("m", 0.8, 0.9)
    settings = AugmentSettings(copies=6, lead_share=0.7, speed_share=0.7, noise_share=0.0)
    for c in range(settings.copies):
        copy = augment_clip(audio, face, FPS, "k", c, settings)
        timing = copy_timing(settings, "k", c, FPS)
        assert (timing.speed, timing.lead_s) == (pytest.approx(copy.speed, abs=1e-4),
                                                 copy.lead_s)
        marked = np.flatnonzero(copy.face[:, 1] > 0.5)
        moved = copy_phones([phone], timing, len(face), FPS)
        if not len(marked):  # played past the end of the clip
            assert moved == ()
            continue
        held = phone_frames(moved[0].start, moved[0].end, FPS, len(face))
        assert abs(held.mean() - marked.mean()) <= 0.5


def test_recorded_augment_settings_read_back_and_bad_ones_are_named():
    settings = AugmentSettings(copies=3, seed=2, snr_db=(5.0, 20.0))
    assert AugmentSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="'snr_db' is not a pair"):
        AugmentSettings.from_dict({**settings.to_dict(), "snr_db": "5-20"})
    with pytest.raises(ValueError, match="'copies' is not a whole number"):
        AugmentSettings.from_dict({**settings.to_dict(), "copies": 2.5})
    with pytest.raises(ValueError, match="no 'seed'"):
        AugmentSettings.from_dict({k: v for k, v in settings.to_dict().items() if k != "seed"})


def test_copies_are_seeded_by_seed_key_and_copy():
    audio, face = _clip()
    settings = AugmentSettings(copies=2, seed=3)
    first = augment_clip(audio, face, FPS, "key-a", 1, settings)
    assert np.array_equal(first.audio, augment_clip(audio, face, FPS, "key-a", 1, settings).audio)
    assert not np.array_equal(first.audio, augment_clip(audio, face, FPS, "key-b", 1,
                                                        settings).audio)
    other_seed = AugmentSettings(copies=2, seed=4)
    assert first.conditions != augment_clip(audio, face, FPS, "key-a", 1, other_seed).conditions


def test_noise_is_mixed_at_the_asked_snr_over_the_speech():
    audio, _ = _clip()
    mask = np.zeros(len(audio), bool)
    mask[8000:24000] = True
    noisy = apply_conditions(audio, 16000, Conditions("fan", 10.0), np.random.default_rng(0),
                             mask)
    noise = noisy - audio
    snr = 10 * np.log10(np.mean(audio[mask] ** 2) / np.mean(noise**2))
    assert abs(snr - 10.0) < 0.01
    with pytest.raises(ValueError, match="babble noise needs"):
        make_noise("babble", 100, 16000, np.random.default_rng(0))


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """A small dataset with the real offline backend's whisper, utterance and whisper_aug
    sets (two copies per train clip, every copy with an inserted lead), written without Ray
    by the same stage functions the pipeline runs."""
    from unitaf_data.features.offline import OfflineBackend

    root = write_dummy_dataset(tmp_path_factory.mktemp("augment") / "dataset",
                               {"train": 3, "val": 2})
    dataset = Dataset.open_folder(root)
    remove_feature_set(dataset.layout, "whisper")
    settings = ExtractSettings(root, augment=AugmentSettings(copies=2, lead_share=1.0))
    backend = OfflineBackend(SETS, settings)
    reports = {name: {} for name in SETS}
    for shard in dataset.shards():
        for name, report in extract_shard(backend, SETS, dataset, shard, 60.0).items():
            reports[name][shard.id] = report
    described = backend.describe()
    for name in SETS:
        write_json(dataset.layout.feature_info(name),
                   feature_info(name, described[name], {}, reports[name]).to_dict())
    return Dataset.open_folder(root)


def test_train_clips_get_aligned_copies_and_other_splits_are_refused(augmented):
    info = augmented.feature_set("whisper_aug")
    assert info.custom["copies"] == 2 and info.custom["augment"]["lead_share"] == 1.0
    assert info.field_spec("face_0.npy").rate == FPS and not info.checks.problems["frames_off"]
    fields = {"whisper": ["teacher.npy"], "whisper_aug": [f for c in range(2)
                                                          for f in copy_fields(c)]}
    for sample in augmented.samples(augmented.shards("train"), fields):
        teacher = sample.features["whisper"]["teacher.npy"]
        for c in range(2):
            teacher_c, utterance_c, face_c = (sample.features["whisper_aug"][f]
                                              for f in copy_fields(c))
            assert teacher_c.shape == teacher.shape and utterance_c.shape == (768,)
            assert face_c.shape == sample.face.shape
            assert np.array_equal(face_c[0], sample.face[0])  # the lead rests the face
            assert not np.array_equal(teacher_c, teacher)
    refused = [s.refused["whisper_aug"] for s in augmented.samples(augmented.shards("val"),
                                                                   {"whisper_aug": []})]
    assert refused and all(r.startswith("not_train") for r in refused)


def _spec(dataset: Dataset, share: float, **values):
    config = load_config(None, [f"augment_share={share}"], data=str(dataset.root), out="x",
                         **values).checked()
    return config.data_spec(FPS, 50.0, augment_settings(dataset, config))


def test_the_loader_samples_copies_of_train_clips_at_the_configured_share(augmented):
    faces = {s.key: s.face for s in augmented.samples(augmented.shards("train"))}
    shards = augmented.shards("train")
    rng = np.random.default_rng(0)
    always = list(joined_samples(augmented, _spec(augmented, 1.0), shards, None, "train", rng))
    never = list(joined_samples(augmented, _spec(augmented, 0.0), shards, None, "train", rng))
    assert len(always) == len(never) == 3
    assert all(np.array_equal(s["face"], faces[s["key"]]) for s in never)
    assert not any(np.array_equal(s["face"], faces[s["key"]]) for s in always)
    # each clip's /m/ is framed for the closure loss, in a copy where the copy plays it
    assert all(len(s["bilabials"]) == 1 for s in never)
    assert [s["bilabials"] for s in always] != [s["bilabials"] for s in never]
    assert any(s["bilabials"] for s in always)
    val = list(joined_samples(augmented, _spec(augmented, 1.0), augmented.shards("val"), None,
                              "val", rng))
    assert len(val) == 2  # held-out clips are read as they are, never refused for lack of copies


def test_augmentation_needs_its_set_and_inputs_the_copies_hold(augmented, tmp_path):
    with pytest.raises(ValueError, match="no units/units.npy"):
        load_config(None, ["augment_share=0.5", "backbone=units", "backbone_set=units",
                           "backbone_field=units.npy"], data="d", out="o").checked()
    bare = Dataset.open_folder(write_dummy_dataset(tmp_path / "bare"))
    config = load_config(None, ["augment_share=0.5"], data=str(bare.root), out="o")
    with pytest.raises(FileNotFoundError, match="--augment N"):
        augment_settings(bare, config)
