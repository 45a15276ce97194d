"""Reading a backup back: gpg --decrypt | zstd -d | pg_restore.

The plaintext exists only in the pipes. The artefact's checksum is checked
against its manifest before anything is decrypted, and every stage's exit
status is checked after: gpg reports a damaged or truncated file only at the
end of the stream, after it has written the plaintext.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..common.pipeline import Pipeline, PipelineError, Stage
from ..errors import PgharborError
from ..pg.conninfo import libpq_env
from ..pg.sections import pg_bindir
from .keys import SecretKeyring
from .store import Backup


class RestoreError(PgharborError, RuntimeError):
    pass


def file_sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def check_checksum(backup: Backup) -> None:
    """Level 1: the stored file is the file the backup wrote."""
    size, digest = file_sha256(backup.artefact)
    m = backup.manifest
    if size != m.size or digest != m.sha256:
        raise RestoreError(f"checksum mismatch for {backup.artefact}: {size} bytes with sha256 {digest}, the manifest "
                           f"says {m.size} bytes with sha256 {m.sha256}; the file is damaged: use the same backup "
                           "from another tier")


def _explain(exc: PipelineError, backup: Backup) -> RestoreError:
    text = str(exc)
    if exc.stage == "gpg" and "No secret key" in exc.stderr:
        recipients = ", ".join(backup.manifest.encryption.get("recipients", []))
        text = (f"the private key given (pg_backup_private_key) cannot decrypt {backup.id}: it was encrypted to "
                f"{recipients}; {text}")
    elif exc.stage in ("gpg", "zstd"):
        text = f"{backup.id} is damaged or truncated (its checksum matched, so it was written so): {text}"
    return RestoreError(text)


def _run(backup: Backup, keyring: SecretKeyring, restore: Stage) -> None:
    stages = [Stage("gpg", keyring.decrypt_argv(backup.artefact)), Stage("zstd", ["zstd", "-d", "-q", "-c"]), restore]
    try:
        Pipeline(stages).run()
    except PipelineError as exc:
        raise _explain(exc, backup) from exc


def check_readable(backup: Backup, keyring: SecretKeyring) -> None:
    """Level 2: the whole stream decrypts, decompresses and parses as a dump.
    pg_restore writes the SQL of every entry, data included, so it reads the
    stream to its end (--list alone reads only the table of contents)."""
    _run(backup, keyring, Stage("pg_restore", [str(pg_bindir() / "pg_restore"), "--file=/dev/null"]))


def restore_into(backup: Backup, keyring: SecretKeyring, conninfo: str, *, keep_owners: bool) -> None:
    """Restore the backup into the (new, empty) database conninfo points at.
    keep_owners restores owners and grants as they were (the same server,
    whose roles exist); without, everything belongs to the connecting user
    (a scratch copy for checking, on any server)."""
    dsn, env = libpq_env(conninfo)
    argv = [str(pg_bindir() / "pg_restore"), "--exit-on-error", f"--dbname={dsn}"]
    if not keep_owners:
        argv += ["--no-owner", "--no-privileges"]
    _run(backup, keyring, Stage("pg_restore", argv, env=env))
