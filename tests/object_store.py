"""An S3-compatible server on 127.0.0.1 for tests (moto's server mode, in its own process,
stopped by its pid), and the environment that points the storage clients at it."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    env: dict[str, str]  # what a process needs to reach it (secret included: never print)
    secret: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.secret)

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


@contextlib.contextmanager
def s3_server(extra_env: dict[str, str] | None = None) -> Iterator[S3Server]:
    """moto's server on a free port of 127.0.0.1; every wait bounded."""
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server on 127.0.0.1:{port} did not start")
            time.sleep(0.1)
        secret = "S3CRET-" + secrets.token_hex(8)
        endpoint = f"http://127.0.0.1:{port}"
        yield S3Server(endpoint, {"AWS_ENDPOINT_URL": endpoint,
                                  "AWS_ACCESS_KEY_ID": "unitaf-test-key",
                                  "AWS_SECRET_ACCESS_KEY": secret,
                                  "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                                  "AWS_EC2_METADATA_DISABLED": "true"}, secret)
    finally:
        process.kill()
        process.wait(timeout=30)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ for the block, the previous values restored after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def upload_tree(server: S3Server, folder, bucket: str, prefix: str) -> None:
    """Every file under a local folder to `s3://bucket/prefix/...` (same relative keys)."""
    from pathlib import Path

    client = server.client()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def s3_bytes(server: S3Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


@contextlib.contextmanager
def s3_server_with_auth() -> Iterator[S3Server]:
    """moto checking signatures: one IAM user whose key is in `env` (made by the first
    requests, which moto lets through unauthenticated)."""
    import boto3

    with s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as server:
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="unitaf")
        policy = iam.create_policy(PolicyName="all", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
            '"Resource": "*"}]}'))
        iam.attach_user_policy(UserName="unitaf", PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName="unitaf")["AccessKey"]
        yield S3Server(server.endpoint, {**server.env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                         "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]},
                       key["SecretAccessKey"])
