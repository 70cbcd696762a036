"""SIGKILL at random moments (three seeds each) of `unitaf-data extract-features`,
`unitaf train`, `unitaf-data push` and `unitaf push-run` (against the fake Hub, whose
repositories persist across processes), then the same command again: the result equals an
uninterrupted run's, byte for byte (sidecars, feature.json and card; the final checkpoint's
weights, optimiser state and history, not its saved RNG state: see the train test; every
file of the Hub repository).

The moment is drawn per seed as a fraction (0.1 to 0.7) of the uninterrupted command's
own measured wall time; the process group (the command, Ray and its workers) is killed
whole. A command that finished before its moment is started again from its starting
state with the moment halved, so every seed kills.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from unitaf_data.testing import write_dummy_dataset

pytestmark = pytest.mark.e2e
TESTS = Path(__file__).resolve().parents[1]
CONFIGS = TESTS.parent / "configs"
SEEDS = (0, 1, 2)
TRAIN = ["steps=6", "val_every=2", "checkpoint_every=2", "warmup_steps=2", "batch_size=2",
         "shuffle_buffer=4", "log_every=1"]
REPO = "someone/killed"
# a command in a child process, with the fake Hub (its state under argv[1]) installed
CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import pytest
from hub_fake import install
if sys.argv[1] != "-":
    install(pytest.MonkeyPatch(), Path(sys.argv[1]))
from unitaf_cli.{app} import app
sys.argv = ["unitaf", *sys.argv[2:]]
app()
"""


def _command(app: str, hub: Path | None, *args: str) -> list[str]:
    return [sys.executable, "-c", CHILD.format(tests=str(TESTS), app=app),
            str(hub) if hub else "-", *args]


def _run(command: list[str]) -> float:
    """Run to the end; its wall time."""
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return time.monotonic() - start


def _kill_group(process: subprocess.Popen) -> None:
    family = psutil.Process(process.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for member in family:  # anything that left the group (Ray's daemons)
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(family, timeout=30)


def killed_then_rerun(command: list[str], seed: int, seconds: float,
                      reset: Callable[[], None]) -> float:
    """Start `command`, SIGKILL its process group at a moment drawn from `seed`, run it
    again to the end; the moment (seconds after the start) at which it was killed. When
    the command finished first, `reset` restores its starting state and the moment is
    halved (at most four times)."""
    moment = random.Random(seed).uniform(0.1, 0.7) * seconds
    for _ in range(5):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _run(command)
            return moment
        reset()
        moment /= 2
    raise AssertionError(f"{command[3:]} always finished before its kill")


def _tree(folder: Path, under: str = "") -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted((folder / under).glob("**/*")) if p.is_file()}


def _report(moments: list[float], seconds: float, what: str) -> None:
    print(f"{what} ({seconds:.1f} s uninterrupted): killed at "
          f"{', '.join(f'{m:.1f} s' for m in moments)}, then run again")


def test_extract_features_killed_at_random_moments_resumes_to_identical_sidecars(tmp_path):
    pristine = write_dummy_dataset(tmp_path / "pristine", {"train": 6, "val": 2, "test": 2})
    reference = tmp_path / "reference"
    shutil.copytree(pristine, reference)
    args = ["extract-features", "--features", "utterance", "--workers", "1"]
    seconds = _run(_command("data_app", None, args[0], str(reference), *args[1:]))
    expected = _tree(reference, "features/utterance") | {"README.md": (
        reference / "README.md").read_bytes()}
    moments = []
    for seed in SEEDS:
        copy = tmp_path / f"killed{seed}"

        def reset(copy=copy):
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(pristine, copy)

        reset()
        moments.append(killed_then_rerun(_command("data_app", None, args[0], str(copy),
                                                  *args[1:]), seed, seconds, reset))
        got = _tree(copy, "features/utterance") | {"README.md": (copy / "README.md"
                                                                   ).read_bytes()}
        assert got == expected, f"seed {seed}: {sorted(set(got) ^ set(expected))}"
    _report(moments, seconds, "extract-features")


@pytest.fixture(scope="module")
def dummy(tmp_path_factory) -> Path:
    return write_dummy_dataset(tmp_path_factory.mktemp("dummy") / "dataset")


@pytest.fixture(scope="module")
def reference_run(dummy, tmp_path_factory) -> tuple[Path, float]:
    run = tmp_path_factory.mktemp("runs") / "reference"
    return run, _run(_train(dummy, run))


def _train(dataset: Path, out: Path) -> list[str]:
    return _command("main_app", None, "train", "--data", str(dataset), "--out", str(out),
                    "--config", str(CONFIGS / "demo_stage1.yaml"), *TRAIN)


def test_train_killed_at_random_moments_resumes_to_the_same_final_weights(
        dummy, reference_run, tmp_path):
    """Training resumes from its last complete step_NNNNNN/ (weights, optimiser, schedule,
    RNG and data position): the final checkpoint's model.safetensors is byte-identical to an
    uninterrupted run's, and so are state.json (step, loss history, schedule) and every
    optimiser tensor of state.safetensors. Not compared: the `torch_rng` tensor saved beside
    them, the generator's state after the last step, which differs (measured) because a
    resumed process draws numbers an uninterrupted one does not (before the restore)."""
    reference, seconds = reference_run
    final = "step_000006"
    moments = []
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        moments.append(killed_then_rerun(_train(dummy, out), seed, seconds, lambda out=out:
                                         shutil.rmtree(out, ignore_errors=True)))
        for name in ("model.safetensors", "state.json"):
            assert (out / final / name).read_bytes() == (reference / final / name
                                                         ).read_bytes(), (seed, name)
        got, expected = (load_file(run / final / "state.safetensors") for run in (
            out, reference))
        assert got.keys() == expected.keys()
        for key in sorted(set(expected) - {"torch_rng"}):
            assert torch.equal(got[key], expected[key]), (seed, key)
        assert not list(out.glob("**/*.tmp")), seed
    _report(moments, seconds, "train")


def test_push_and_push_run_killed_at_random_moments_end_with_the_same_repositories(
        dummy, reference_run, tmp_path):
    """Each push is killed and run again against a fake Hub that keeps what was committed
    before the kill; the repository then holds exactly the files of an uninterrupted push
    (`hub.files`: path → bytes at the head of main)."""
    from hub_fake import FakeHub

    run, _ = reference_run
    pushes = {
        "push": ("data_app", ["push", str(dummy), REPO, "--include-features", "all"],
                 "dataset"),
        "push-run": ("main_app", ["push-run", str(run), REPO], "model"),
    }
    for what, (app, args, kind) in pushes.items():
        reference = tmp_path / what / "reference"
        seconds = _run(_command(app, reference, *args))
        expected = FakeHub(reference / "hub").files(REPO, kind)
        assert expected
        moments = []
        for seed in SEEDS:
            fake = tmp_path / what / f"killed{seed}"
            moments.append(killed_then_rerun(_command(app, fake, *args), seed, seconds,
                                             lambda fake=fake: shutil.rmtree(fake)))
            assert FakeHub(fake / "hub").files(REPO, kind) == expected, (what, seed)
        _report(moments, seconds, what)
