"""A real etcd cluster on loopback for the tests: three members of Debian's
etcd (unpacked by the Makefile, not installed), peers and clients over TLS
with certificates from a test CA, as the etcd role configures them: peers
must present a certificate of the CA, clients log in (etcd's own users)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from certs import make_ca, make_leaf, write_cert, write_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from pgserver import free_port

REPO = Path(__file__).resolve().parents[1]
ETCD = REPO / ".cache/etcd-server/usr/bin/etcd"


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"


@dataclass
class EtcdCluster:
    members: list[Member]
    workdir: Path
    ca_file: str
    ca: tuple = ()  # the CA's (certificate, key): other servers' certificates come from it
    logs: list[Path] = field(default_factory=list)

    def start(self, member: Member, state: str = "new") -> None:
        tls = self.workdir / member.name
        initial = ",".join(f"{m.name}=https://127.0.0.1:{m.peer_port}" for m in self.members)
        log = self.workdir / f"{member.name}.log"
        self.logs.append(log)
        member.process = subprocess.Popen(
            [str(ETCD), "--name", member.name, "--data-dir", str(self.workdir / f"{member.name}.data"),
             "--listen-peer-urls", f"https://127.0.0.1:{member.peer_port}",
             "--initial-advertise-peer-urls", f"https://127.0.0.1:{member.peer_port}",
             "--listen-client-urls", member.url, "--advertise-client-urls", member.url,
             "--initial-cluster", initial, "--initial-cluster-state", state, "--initial-cluster-token", "test",
             "--cert-file", f"{tls}.crt", "--key-file", f"{tls}.key",
             "--peer-cert-file", f"{tls}.crt", "--peer-key-file", f"{tls}.key",
             "--peer-trusted-ca-file", self.ca_file, "--peer-client-cert-auth", "--logger", "zap"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def stop(self, member: Member) -> None:
        if member.process and member.process.poll() is None:
            member.process.terminate()
            member.process.wait(timeout=30)

    def wait_healthy(self, timeout: float = 30) -> None:
        import ssl
        context = ssl.create_default_context(cafile=self.ca_file)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.members[0].url}/health", timeout=2, context=context) as r:
                    if b'"health":"true"' in r.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                tails = "\n".join(p.read_text()[-2000:] for p in self.logs if p.exists())
                raise TimeoutError(f"etcd did not become healthy:\n{tails}")
            time.sleep(0.2)


def start_cluster(size: int = 3) -> EtcdCluster:
    if not ETCD.exists():
        raise FileNotFoundError(f"{ETCD} is missing: run 'make integration', which unpacks Debian's etcd-server")
    workdir = Path(tempfile.mkdtemp(prefix="pgharbor-etcd-"))
    ca = make_ca("etcd test CA")
    ca_file = write_cert(workdir / "ca.crt", ca[0])
    members = [Member(f"m{i}", free_port(), free_port()) for i in range(1, size + 1)]
    for member in members:
        cert, key = make_leaf(ca, cn=member.name, dns=("localhost",), ips=("127.0.0.1",),
                              also=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        write_cert(workdir / f"{member.name}.crt", cert)
        write_key(workdir / f"{member.name}.key", key)
    cluster = EtcdCluster(members, workdir, ca_file, ca)
    for member in members:
        cluster.start(member)
    cluster.wait_healthy()
    return cluster


def stop_cluster(cluster: EtcdCluster) -> None:
    for member in cluster.members:
        cluster.stop(member)
    shutil.rmtree(cluster.workdir, ignore_errors=True)
