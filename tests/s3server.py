"""A real S3 HTTP endpoint for the tests: the moto server as its own
process on loopback (the same server the lab runs on its s3 host)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import boto3

REGION = "eu-central-1"
ADMIN = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin-secret"}


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, endpoint_url: str | None = None):
        """An unrestricted client: what a test uses to look behind the code under test."""
        return boto3.client("s3", endpoint_url=endpoint_url or self.url, region_name=REGION, **ADMIN)

    def bucket(self, name: str, *, object_lock: bool = False) -> str:
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock,
                                    CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3() -> S3Server:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return S3Server(process, port)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server did not start on port {port}") from None
            time.sleep(0.2)
