"""The lab's S3 endpoint: moto's server, whose S3 state survives a restart.

moto keeps everything in memory. This wrapper loads the S3 state from a file
when it starts, writes it back every few seconds while it runs and once more
when systemd stops it (SIGTERM), each time to a new file renamed over the old
one. Every object version, delete marker, lock and bucket setting is kept:
moto's versioned key store pickles only the newest version of each key by
itself, so it is pickled here as the whole lists it holds.

With --iam <file>, it also makes the lab's S3 enforce least privilege as a
real bucket does: each user of the file (JSON: {"users": [{"name",
"access_key_id", "secret_access_key", "policy"}]}) is created in moto's IAM
with the key the lab's inventory gives it and its inline policy, and from
then on every request is authenticated and authorised (moto's own switch,
the one POST /moto-api/reset-auth sets). IAM is made anew from the file at
every start: the file is the lab's truth, not the saved state.

    moto-persistent.py <state file> <seconds between saves> [--iam <file>] [moto_server options]
"""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import sys
import threading

import moto.server
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.s3.models import s3_backends
from moto.s3.utils import _VersionedKeyStore


def _rebuild(items):
    store = _VersionedKeyStore()
    for key, versions in items:
        dict.__setitem__(store, key, versions)
    return store


copyreg.pickle(_VersionedKeyStore, lambda store: (_rebuild, (list(dict.items(store)),)))
LOCK = threading.Lock()


def load(path: str) -> None:
    if os.path.exists(path):
        with open(path, "rb") as handle:
            state = pickle.load(handle)
        for account, backend in state["accounts"].items():
            s3_backends[account] = backend
        # which account holds which bucket: S3's one namespace of bucket names
        s3_backends.bucket_accounts.update(state["bucket_accounts"])


def save(path: str) -> None:
    with LOCK:
        for _ in range(3):  # a request may change a dict while it is pickled: try again
            try:
                data = pickle.dumps({"accounts": dict(s3_backends),
                                     "bucket_accounts": dict(s3_backends.bucket_accounts)})
                break
            except RuntimeError:
                continue
        else:
            return
        temporary = f"{path}.new"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


def enforce(path: str) -> None:
    """The users of the file, with their own keys and policies; then authentication on."""
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    with open(path) as handle:
        users = json.load(handle)["users"]
    for user in users:
        iam.create_user("us-east-1", user["name"])
        iam.put_user_policy(user["name"], user["name"], json.dumps(user["policy"]))
        key = iam.create_access_key(user["name"])
        # moto makes a random key; the lab's is in its vault, so the key takes that id and secret
        iam.access_keys.pop(key.access_key_id, None)
        key.access_key_id, key.secret_access_key = user["access_key_id"], user["secret_access_key"]
        iam.access_keys[key.access_key_id] = key
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0


def main() -> None:
    path, interval, options = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    load(path)
    if options[:1] == ["--iam"]:
        enforce(options[1])
        options = options[2:]

    def saver() -> None:
        while True:
            threading.Event().wait(interval)
            save(path)

    def stop(*_) -> None:
        save(path)
        os._exit(0)

    # moto's main installs its own SIGTERM and SIGINT handler, by this name: ours saves first.
    moto.server.signal_handler = stop
    threading.Thread(target=saver, daemon=True).start()
    moto.server.main(options)


if __name__ == "__main__":
    main()
