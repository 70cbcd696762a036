"""The storage layer and the dataset contract on an S3-compatible server (moto on
127.0.0.1): checked keys, whole-object writes, datasets streamed and verified from a URL,
names from records that cannot leave the dataset's prefix, and clear errors, before Ray
starts, for a missing bucket, refused credentials and an unreachable endpoint, none of
which shows the secret."""

from __future__ import annotations

import json

import pytest
from object_store import (
    environment,
    free_port,
    s3_bytes,
    s3_server,
    s3_server_with_auth,
    upload_tree,
)
from typer.testing import CliRunner

from unitaf_cli.data_app import app as data_app
from unitaf_data.dataset import Storage, StorageError, check_key
from unitaf_data.hub import open_dataset
from unitaf_data.reader import ShardError
from unitaf_data.schema import RecordError
from unitaf_data.testing import write_dummy_dataset

runner = CliRunner()
server_test = pytest.mark.e2e  # each starts or uses a moto server process (seconds)


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    with s3_server() as server, environment(server.env):
        server.make_bucket("datasets")
        yield server


@pytest.fixture(scope="module")
def s3_dataset(s3, tmp_path_factory):
    """A dummy dataset with two feature sets, uploaded to s3://datasets/dummy."""
    local = write_dummy_dataset(tmp_path_factory.mktemp("dummy") / "dataset")
    upload_tree(s3, local, "datasets", "dummy")
    return local


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a//b", "a/../b", "..", ".",
                                 "s3://other/x", "a\\b", "", "a/./b", "x?y", "a b"])
def test_keys_that_could_leave_the_root_are_refused(key):
    with pytest.raises(StorageError):
        check_key(key)
    with pytest.raises(StorageError):
        Storage.of("/tmp/somewhere") / key


def test_keys_and_urls_that_are_fine():
    assert check_key(".build/shards/train-000000.json") == ".build/shards/train-000000.json"
    assert Storage.of("s3://bucket/a/b/").root == "s3://bucket/a/b"
    for bad in ("http://host/x", "file:///etc", "s3://", "s3://b/../c", "s3://b/x?y=1"):
        with pytest.raises(StorageError):
            Storage.of(bad)


@server_test
def test_a_failed_write_leaves_nothing(tmp_path, s3):
    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("stopped")

    for store in (Storage.of(tmp_path), Storage.of("s3://datasets/failed")):
        with pytest.raises(RuntimeError):
            store.write_object("data/x.tar", fail)
        assert not store.exists("data/x.tar") and store.list() == []
        record = store.write_bytes("data/x.tar", b"whole")
        assert store.read_bytes("data/x.tar") == b"whole" and record.bytes == 5
        assert store.list() == ["data/x.tar"]
        store.remove()
        assert store.is_empty()


@server_test
def test_a_dataset_streams_from_s3_as_from_its_folder(s3_dataset):
    local = open_dataset(s3_dataset)
    remote = open_dataset("s3://datasets/dummy")
    assert remote.origin == {"url": "s3://datasets/dummy"}
    assert remote.feature_set_names() == local.feature_set_names() == ["units", "whisper"]
    assert remote.manifest() == local.manifest()
    wanted = {"units": ["units.npy"], "whisper": ["teacher.npy"]}
    pairs = zip(local.samples(local.shards(), wanted), remote.samples(remote.shards(), wanted),
                strict=True)
    for a, b in pairs:
        assert a.key == b.key and a.flac == b.flac and (a.face == b.face).all()
        assert (a.features["units"]["units.npy"] == b.features["units"]["units.npy"]).all()
    remote.check_sidecars(["units", "whisper"], ["train", "val", "test"])


@server_test
def test_an_altered_object_is_refused_before_any_sample(s3, s3_dataset):
    upload_tree(s3, s3_dataset, "datasets", "altered")
    key = "altered/data/train/train-000000.tar"
    data = bytearray(s3_bytes(s3, "datasets", key))
    data[700] ^= 1
    s3.client().put_object(Bucket="datasets", Key=key, Body=bytes(data))
    dataset = open_dataset("s3://datasets/altered")
    with pytest.raises(ShardError, match="checksum mismatch"):
        next(dataset.samples(dataset.shards("train")))


@server_test
def test_names_in_records_cannot_leave_the_dataset_prefix(s3, s3_dataset):
    """unitaf.json and the manifest name shards that would lie outside the prefix: an
    object placed there is never read."""
    upload_tree(s3, s3_dataset, "datasets", "hostile")
    upload_tree(s3, s3_dataset, "datasets", "outside")  # what a `..` would reach
    info = json.loads((s3_dataset / "unitaf.json").read_text())
    record = info["shards"].pop("train/train-000000")
    for hostile in ("train/../../outside/data/train/train-000000", "../outside/train-000000",
                    "s3://datasets/outside/train-000000"):
        info["shards"][hostile] = record
        s3.client().put_object(Bucket="datasets", Key="hostile/unitaf.json",
                               Body=json.dumps(info).encode())
        with pytest.raises(RecordError):
            dataset = open_dataset("s3://datasets/hostile")
            list(dataset.samples(dataset.shards()))
        info["shards"].pop(hostile)
    with pytest.raises(StorageError):
        open_dataset("s3://datasets/hostile").store.open("../outside/unitaf.json")


@pytest.fixture
def ray_starts(monkeypatch) -> list[str]:
    """Addresses the build asked Ray to start or join (it must not get that far)."""
    from unitaf_pipelines import build

    calls: list[str] = []
    monkeypatch.setattr(build, "init_ray", lambda address=None: calls.append(str(address)))
    return calls


def _build(out: str, *extra: str):
    return runner.invoke(data_app, ["build", "--source", "demo", "--demo-minutes", "0.2",
                                    "--out", out, *extra])


def _assert_refused_before_ray(result, secret: str, phrase: str, ray_starts: list) -> None:
    assert result.exit_code == 2, result.output
    assert phrase in result.output, result.output
    assert secret not in result.output
    assert ray_starts == []


@server_test
def test_a_missing_bucket_is_one_clear_error_before_ray(s3, ray_starts):
    result = _build("s3://no-such-bucket/demo")
    _assert_refused_before_ray(result, s3.secret, "the bucket 'no-such-bucket' does not exist",
                               ray_starts)


@server_test
def test_an_unreachable_endpoint_is_one_clear_error_before_ray(s3, ray_starts):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with environment({"AWS_ENDPOINT_URL": endpoint}):
        result = _build("s3://datasets/demo")
    _assert_refused_before_ray(result, s3.secret, f"cannot be reached at {endpoint}",
                               ray_starts)


@server_test
def test_refused_credentials_are_one_clear_error_before_ray_without_the_secret(ray_starts):
    pytest.importorskip("moto")
    with s3_server_with_auth() as server, environment(server.env):
        server.make_bucket("datasets")
        Storage.of("s3://datasets/x").check_access()  # the right key is accepted
        wrong = "WRONG-" + server.secret[::-1]
        with environment({"AWS_SECRET_ACCESS_KEY": wrong}):
            result = _build("s3://datasets/demo", "-v")
    _assert_refused_before_ray(result, wrong, "access refused: check the credentials",
                               ray_starts)
    assert server.secret not in result.output


@server_test
def test_push_from_a_url_dataset_plans_what_the_folder_would(s3, s3_dataset):
    from unitaf_data.hub import push_dataset

    upload_tree(s3, s3_dataset, "datasets", "to-push")
    s3.client().put_object(Bucket="datasets", Key="to-push/.build/settings.json", Body=b"{}")
    local = push_dataset(s3_dataset, "me/dummy", include_features=["all"], dry_run=True)
    remote = push_dataset("s3://datasets/to-push", "me/dummy", include_features=["all"],
                          dry_run=True)
    assert [(f.path, f.bytes) for f in remote.plan.files] == [
        (f.path, f.bytes) for f in local.plan.files]
    assert not any(f.path.startswith(".build") for f in remote.plan.files)
