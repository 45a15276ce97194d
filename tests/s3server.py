"""A real S3 HTTP endpoint for the tests: the moto server as its own
process on loopback (the same server the lab runs on its s3 host), with
stunnel (Debian's) in front of it for HTTPS, as in the lab: pgBackRest
speaks S3 only over TLS, and checks the certificate against a DNS name, so
the HTTPS endpoint is named localhost with a certificate from a CA of its own."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from certs import make_ca, make_leaf, write_cert, write_key

REGION = "eu-central-1"
ADMIN = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin-secret"}


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int
    tunnel: subprocess.Popen | None = None
    tls_port: int = 0
    tls_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        return str(self.tls_dir / "tier3-ca.crt")

    def client(self, endpoint_url: str | None = None):
        """An unrestricted client: what a test uses to look behind the code under test."""
        return boto3.client("s3", endpoint_url=endpoint_url or self.url, region_name=REGION, **ADMIN)

    def bucket(self, name: str, *, object_lock: bool = False) -> str:
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock,
                                    CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def enforce(self, policies: dict[str, dict]) -> dict[str, tuple[str, str]]:
        """An IAM user per name with its policy and a key, then moto's switch: from the next
        request on, every request is authenticated and authorised (the admin key keeps all
        rights). Make the buckets first. Returns each user's (key id, secret)."""
        iam = boto3.client("iam", endpoint_url=self.url, region_name=REGION, **ADMIN)
        keys = {}
        for user, policy in policies.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        switch = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                        headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(switch, timeout=10).read()
        return keys

    def stop(self) -> None:
        for process in (self.tunnel, self.process):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
        if self.tls_dir is not None:
            shutil.rmtree(self.tls_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, process: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            ready()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


def _start_tunnel(server: S3Server) -> None:
    """stunnel on a port of its own, relaying TLS to the moto server."""
    tls_dir = Path(tempfile.mkdtemp(prefix="pgharbor-s3tls-"))
    tls_dir.chmod(0o755)  # pgBackRest, running as postgres, reads the CA file here
    ca = make_ca("pgharbor test S3 CA")
    cert, key = make_leaf(ca, cn="localhost", dns=("localhost",), ips=("127.0.0.1",))
    write_cert(tls_dir / "tier3-ca.crt", ca[0])
    write_cert(tls_dir / "s3.crt", cert)
    write_key(tls_dir / "s3.key", key)
    (tls_dir / "s3.key").chmod(0o600)
    port = free_port()
    (tls_dir / "stunnel.conf").write_text(
        f"foreground = yes\npid =\ndebug = 3\n[s3]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{server.port}\n"
        f"cert = {tls_dir / 's3.crt'}\nkey = {tls_dir / 's3.key'}\n")
    tunnel = subprocess.Popen(["stunnel", str(tls_dir / "stunnel.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.tunnel, server.tls_port, server.tls_dir = tunnel, port, tls_dir
    context = ssl.create_default_context(cafile=server.ca_file)
    _wait("stunnel in front of the moto server", tunnel,
          lambda: urllib.request.urlopen(server.https_url + "/", timeout=1, context=context).read())


def start_s3() -> S3Server:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(f"moto server on port {port}", process,
          lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read())
    server = S3Server(process, port)
    try:
        _start_tunnel(server)
    except BaseException:
        server.stop()
        raise
    return server
