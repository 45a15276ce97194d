"""A real sshd on loopback for the tier-2 tests, configured like the backup
server configures the DB hosts' keys: restrict + a forced rrsync command.

The sshd binary is unpacked from Debian's openssh-server package by the
Makefile (.cache/openssh-server), so that no system SSH service is installed
or started on the machine running the tests."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNPACKED = REPO / ".cache" / "openssh-server" / "usr" / "sbin" / "sshd"


def sshd_binary() -> str | None:
    if UNPACKED.exists():
        return str(UNPACKED)
    return shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class SshServer:
    directory: Path
    port: int
    user: str
    process: subprocess.Popen
    host_public_key: str

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    def authorize(self, public_key: str, options: str) -> None:
        with open(self.authorized_keys, "a") as f:
            f.write(f"{options} {public_key}\n")

    def known_hosts(self, path: Path, port: int | None = None) -> Path:
        """A pinned host key for [127.0.0.1]:port (the port a client dials)."""
        path.write_text(f"[127.0.0.1]:{port or self.port} {self.host_public_key}\n")
        return path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_sshd(directory: Path) -> SshServer:
    binary = sshd_binary()
    if binary is None:
        raise RuntimeError("no sshd: run 'make integration' (it unpacks openssh-server into .cache)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    directory.mkdir(parents=True, exist_ok=True)
    host_key = directory / "host_ed25519"
    host_public = keygen(host_key, "backup server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (directory / "authorized_keys").write_text("")
    config = directory / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
""")
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(directory / "sshd.log", "w"))
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"sshd did not start: {(directory / 'sshd.log').read_text()}") from None
            time.sleep(0.1)
    return SshServer(directory, port, getpass.getuser(), process, host_public)
