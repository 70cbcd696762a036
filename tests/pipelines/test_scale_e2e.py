"""Scale-out, on this machine only: a BEAT2 corpus in moto's S3 server on 127.0.0.1, built
by `unitaf-data build --input s3://... --out s3://... --ray-address` on a two-node Ray
cluster whose second node sees neither the driver's work folder nor its Ray folder. The
shards equal a local single-node build's byte for byte, both nodes do work, the secret
appears nowhere, and SIGKILL of the driver or of the second node mid-build followed by the
same command loses nothing; ASR actors that hold every CPU of a node (as when Ray restarts a
lost node's actors on the one left) are still fed. A stage that hangs fails with what is
missing on which node."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from clusters import two_node_cluster, unshare_reason
from object_store import environment, s3_bytes, s3_server, upload_tree

from corpora import demo_recordings, make_beat2
from processes import kill_everything

pytestmark = pytest.mark.e2e
GOOD = ("2_scott_0_65_65", "2_scott_0_3_3", "4_lawrence_1_1_1", "6_carla_0_16_16")
BUILD_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small BEAT2 folder (three good recordings and one without words) in the tests'
    work folder, which the second node cannot see."""
    pytest.importorskip("espeakng_loader")
    root = tmp_path_factory.mktemp("scale")
    folder = root / "beat2" / "beat_english_v2.0.0"
    expected = make_beat2(folder, demo_recordings(root, minutes=1.4, seed=11))
    rows = [f"{stem},{'train' if stem.startswith('6_') else expected[stem]}" for stem in GOOD]
    (folder / "train_test_split.csv").write_text("id,type\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def s3(corpus):
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    with s3_server() as server, environment(server.env):
        for bucket in ("corpus", "datasets"):
            server.make_bucket(bucket)
        upload_tree(server, corpus, "corpus", "beat2")
        server.client().upload_file(str(corpus.parents[1] / "beat2" / "mat_final.npy"),
                                    "corpus", "mat_final.npy")
        yield server


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory) -> Path:
    """The same corpus built on one local node, to local disk."""
    from unitaf_data.sources import SourceOptions
    from unitaf_pipelines.build import BuildConfig, run_build

    out = tmp_path_factory.mktemp("local") / "dataset"
    run_build(BuildConfig(source="beat2", input_dir=corpus, out_dir=out, progress=False,
                          source_options=SourceOptions(
                              flame_to_arkit=str(corpus.parents[1] / "beat2" / "mat_final.npy"))))
    return out


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    reason = unshare_reason()
    if reason:
        pytest.skip(f"two-node cluster without a shared disk: {reason}")
    with two_node_cluster(tmp_path_factory.getbasetemp(), s3.env) as running:
        yield running


def build_command(cluster, prefix: str, stall_timeout: int = 240) -> list[str]:
    return [sys.executable, "-c", "from unitaf_cli.data_app import app; app()", "build",
            "--source", "beat2", "--input", "s3://corpus/beat2", "--out",
            f"s3://datasets/{prefix}", "--flame-to-arkit", "s3://corpus/mat_final.npy",
            "--ray-address", cluster.address, "--stall-timeout", str(stall_timeout)]


def run_command(cluster, command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=cluster.env, text=True, capture_output=True,
                            timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def run_build_command(cluster, prefix: str) -> subprocess.CompletedProcess:
    return run_command(cluster, build_command(cluster, prefix))


def unitaf(app: str, *args: str) -> list[str]:
    return [sys.executable, "-c", f"from unitaf_cli.{app} import app; app()", *args]


def assert_same_shards(s3, prefix: str, local: Path) -> None:
    tars = sorted(local.glob("data/*/*.tar"))
    assert tars
    for tar in tars:
        key = f"{prefix}/{tar.relative_to(local).as_posix()}"
        assert s3_bytes(s3, "datasets", key) == tar.read_bytes(), key
    listed = s3.client().list_objects_v2(Bucket="datasets", Prefix=f"{prefix}/data/")
    assert len(listed["Contents"]) == len(tars)


def markers(s3, prefix: str) -> int:
    listed = s3.client().list_objects_v2(Bucket="datasets", Prefix=f"{prefix}/.build/recordings/")
    return listed.get("KeyCount", 0)


def finished(s3, prefix: str) -> bool:
    """The build's last record is written: a kill now would not be mid-build."""
    from unitaf_data.dataset import DatasetLayout

    listed = s3.client().list_objects_v2(Bucket="datasets",
                                         Prefix=f"{prefix}/{DatasetLayout.INFO_KEY}")
    return listed.get("KeyCount", 0) > 0


def wait_for_marker(s3, prefix: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while markers(s3, prefix) == 0:
        assert process.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline, f"no recording marked done in {timeout} s"
        time.sleep(0.5)


def test_cluster_build_from_s3_equals_a_local_build_and_uses_both_nodes(
        s3, cluster, local_build):
    result = run_build_command(cluster, "beat2")
    assert_same_shards(s3, "beat2", local_build)
    node_rows = [line for line in result.stdout.splitlines() if "node " in line
                 and " recordings," in line]
    assert len(node_rows) == 2, result.stdout  # ASR actors on both nodes
    again = run_build_command(cluster, "beat2")  # finished: reported, nothing rewritten
    assert "resuming the build" in again.stderr
    assert_same_shards(s3, "beat2", local_build)
    from unitaf_data.hub import open_dataset

    dataset = open_dataset("s3://datasets/beat2")
    assert len(list(dataset.samples(dataset.shards()))) == dataset.info.counts["clips"] > 0
    objects = s3.client().list_objects_v2(Bucket="datasets", Prefix="beat2/")["Contents"]
    for item in objects:  # records, markers, shards, card: no credential anywhere
        assert s3.secret.encode() not in s3_bytes(s3, "datasets", item["Key"]), item["Key"]
    assert s3.secret not in result.stdout + result.stderr + again.stdout + again.stderr
    worker_logs = [path for path in cluster.head_dir.rglob("worker-*") if path.is_file()]
    assert worker_logs  # what the tasks and actors on the head logged
    for path in worker_logs:
        assert s3.secret.encode() not in path.read_bytes(), path


def test_extract_train_and_eval_run_from_s3(s3, cluster, tmp_path):
    """After the cluster build: features extracted on the cluster into the dataset's
    storage, stages I and II trained from the URL into runs at a URL, evaluated from it."""
    if not markers(s3, "beat2"):
        pytest.skip("needs the cluster build of the first test")
    run_command(cluster, unitaf("data_app", "extract-features", "s3://datasets/beat2",
                                "--features", "whisper", "--ray-address", cluster.address))
    from typer.testing import CliRunner

    from unitaf_cli.main_app import app

    fast = ["steps=4", "val_every=2", "checkpoint_every=4", "warmup_steps=2", "batch_size=2",
            "shuffle_buffer=4"]
    configs = Path(__file__).resolve().parents[2] / "configs"
    runner = CliRunner()
    with environment({"UNITAF_RUN_CACHE": str(tmp_path / "run-cache")}):
        # the features were extracted without augmented copies, so stage II draws none
        for stage, extra in (("1", []),
                             ("2", ["--init", "s3://datasets/runs/stage1", "augment_share=0"])):
            trained = runner.invoke(app, [
                "train", "--data", "s3://datasets/beat2", "--out",
                f"s3://datasets/runs/stage{stage}", "--config",
                str(configs / f"demo_stage{stage}.yaml"), *fast, *extra])
            assert trained.exit_code == 0, trained.output
    with environment({"UNITAF_RUN_CACHE": str(tmp_path / "fresh-cache")}):  # from S3 only
        result = runner.invoke(app, ["eval", "s3://datasets/runs/stage2", "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "lve" in result.output
    listed = s3.client().list_objects_v2(Bucket="datasets", Prefix="runs/stage2/")
    keys = {item["Key"] for item in listed["Contents"]}
    assert {"runs/stage2/model.json", "runs/stage2/best/model.safetensors",
            "runs/stage2/eval/val/eval.json"} <= keys
    assert "runs/stage2/step_000004/model.safetensors" in keys


def test_killing_the_driver_mid_build_then_rerunning_loses_nothing(s3, cluster, local_build):
    process = subprocess.Popen(build_command(cluster, "killed-driver"), env=cluster.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_marker(s3, "killed-driver", process)
    kill_everything(process)
    assert not finished(s3, "killed-driver")  # the marked recordings may all be in by now
    run_build_command(cluster, "killed-driver")
    assert_same_shards(s3, "killed-driver", local_build)


FULL_NODE_BUILD = """
import sys
from pathlib import Path

import ray

from unitaf_data.sources import SourceOptions
from unitaf_pipelines.build import BuildConfig, run_build
from unitaf_pipelines.runtime import init_ray

init_ray(num_cpus=1)


@ray.remote(num_cpus=0.5)
class RestartedHere:  # an actor Ray moved here from a lost node, holding half the CPU
    def ready(self) -> bool:
        return True


holder = RestartedHere.remote()
ray.get(holder.ready.remote())
corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
run_build(BuildConfig(source="beat2", input_dir=corpus, out_dir=out, progress=False,
                      asr_workers=1, stall_timeout_s=60, source_options=SourceOptions(
                          flame_to_arkit=str(corpus.parents[1] / "beat2" / "mat_final.npy"))))
"""


def test_asr_actors_holding_every_cpu_of_the_node_are_still_fed(corpus, local_build, tmp_path):
    """After a node loss Ray restarts the lost node's ASR actors on the nodes left, where
    they can hold every CPU: the tasks that load and plan recordings reserve none, so the
    build still ends (it waited on loads that never started, until the stall timeout)."""
    out = tmp_path / "dataset"
    done = subprocess.run([sys.executable, "-c", FULL_NODE_BUILD, str(corpus), str(out)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tars = sorted(local_build.glob("data/*/*.tar"))
    assert [t.relative_to(local_build) for t in tars] == sorted(
        t.relative_to(out) for t in out.glob("data/*/*.tar"))
    for tar in tars:
        assert (out / tar.relative_to(local_build)).read_bytes() == tar.read_bytes(), tar


def test_losing_the_second_node_mid_build_then_rerunning_loses_nothing(
        s3, cluster, local_build):
    """Last in this module: the cluster keeps one node afterwards."""
    process = subprocess.Popen(build_command(cluster, "killed-node", stall_timeout=60),
                               env=cluster.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    wait_for_marker(s3, "killed-node", process)
    cluster.kill_node("second")
    try:  # finishes on the head, or fails saying the node was lost or what it waited for
        output, _ = process.communicate(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_everything(process)
        pytest.fail("the build hung after the second node was lost")
    if process.returncode != 0:
        assert process.returncode == 2, output[-3000:]  # an error message, never a bug
        said = " ".join(output.split())  # the error line, however the console wrapped it
        stalled = "nothing finished in 60 s; still waiting for" in said and "nodes:" in said
        lost = ("the cluster lost a node or worker mid-run" in said
                and "rerun the same command to resume" in said)
        assert stalled or lost, output[-3000:]
    run_build_command(cluster, "killed-node")
    assert_same_shards(s3, "killed-node", local_build)


def test_a_hung_stage_fails_naming_what_is_missing_on_which_node():
    import ray

    from unitaf_pipelines.runtime import (
        StageStalled,
        actor_nodes,
        actor_pool,
        init_ray,
        node_label,
        run_on_actors,
    )

    init_ray(num_cpus=2)

    @ray.remote
    class Stuck:
        def where(self) -> str:
            return node_label()

        def work(self, item: str) -> str:
            time.sleep(3600)
            return item

    with actor_pool(Stuck, 1, {"num_cpus": 0.1}) as actors:
        where = actor_nodes(actors, timeout=60)
        clock = time.monotonic()
        with pytest.raises(StageStalled) as stalled:
            run_on_actors(actors, ["rec-a"], lambda actor, item: actor.work.remote(item),
                          lambda item, result: None, timeout=3, stage="transcribe",
                          name=lambda item: f"recording {item}", where=where)
    assert time.monotonic() - clock < 30
    message = str(stalled.value)
    assert "transcribe: nothing finished in 3 s" in message
    assert f"recording rec-a (actor 0 on {where[0]})" in message and "alive" in message
