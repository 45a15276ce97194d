"""etcd's authentication brought to a declared state: a root user, and one
user per client with a role of its own that may read and write its key
prefixes and nothing else, then authentication switched on.

etcd is reached through its v3 JSON gateway over HTTPS (the same API
Patroni's etcd3 store uses), with the standard library: the hosts need no
etcd client library. A password is never read back from etcd (it keeps only
a hash): a user's password is right when etcd authenticates the user with
it, and set again otherwise."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ..errors import PgharborError

ROOT = "root"
READWRITE = "READWRITE"
ADD_PATIENCE = 30.0


# The options every etcd module takes (documented in the doc fragment pgharbor_etcd).
ETCD_OPTIONS: dict[str, dict[str, Any]] = {
    "endpoint": {"type": "str", "required": True},
    "ca": {"type": "path", "required": True},
    "root_password": {"type": "str", "required": True, "no_log": True},
}


class EtcdError(PgharborError):
    pass


class AuthNotEnabled(EtcdError):
    """etcd answered that authentication is off: nothing to log in to yet."""


@dataclass(frozen=True)
class EtcdUser:
    """A client of etcd: its user, and the key prefixes its role may read and write."""
    name: str
    password: str = field(repr=False)
    prefixes: tuple[str, ...]

    @property
    def role(self) -> str:
        return self.name


def prefix_range(prefix: str) -> tuple[str, str]:
    """A key prefix as etcd's [key, range_end): the prefix with its last byte
    incremented (etcdctl --prefix does the same)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        raise EtcdError(f"key prefix {prefix!r} covers every key: give a prefix such as /service/")
    raw[-1] += 1
    return prefix, raw.decode("latin-1")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("latin-1")).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode("latin-1")


class EtcdClient:
    """One member's client URL (https://host:2379), its CA, and a token once logged in."""

    def __init__(self, url: str, ca_file: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout
        self.token: str | None = None

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/v3/{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            answer = exc.read().decode(errors="replace")
            try:
                message = json.loads(answer).get("message") or answer
            except ValueError:
                message = answer
            if "authentication is not enabled" in message:
                raise AuthNotEnabled(message) from exc
            raise EtcdError(f"etcd at {self.url} refused {path}: {message.strip()}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EtcdError(f"etcd at {self.url} did not answer {path}: {getattr(exc, 'reason', exc)} "
                            "(is the member running, and does its certificate chain to the CA given?)") from exc

    def login(self, user: str, password: str) -> bool:
        """Log in; False when authentication is off (then no token is needed)."""
        self.token = None
        self.token = self.call("auth/authenticate", {"name": user, "password": password})["token"]
        return True

    def password_works(self, user: str, password: str) -> bool:
        """Whether etcd authenticates user with password (authentication on);
        the client's own token is kept (authenticate ignores it)."""
        try:
            self.call("auth/authenticate", {"name": user, "password": password})
        except AuthNotEnabled:
            raise
        except EtcdError as exc:
            if "invalid user ID or password" in str(exc):
                return False
            raise
        return True

    def users(self) -> list[str]:
        return list(self.call("auth/user/list", {}).get("users", []))

    def user_roles(self, user: str) -> list[str]:
        return list(self.call("auth/user/get", {"name": user}).get("roles", []))

    def roles(self) -> list[str]:
        return list(self.call("auth/role/list", {}).get("roles", []))

    def role_permissions(self, role: str) -> set[tuple[str, str, str]]:
        """A role's permissions as (type, key, range_end)."""
        perms = self.call("auth/role/get", {"role": role}).get("perm", [])
        return {(p.get("permType", "READ"), _unb64(p.get("key", "")), _unb64(p.get("range_end", "")))
                for p in perms}


def ensure_auth(client: EtcdClient, root_password: str, users: list[EtcdUser], *,
                check_mode: bool = False) -> list[str]:
    """Bring etcd's users, roles and authentication to the declared state and
    say what changed (or would, in check mode): a root user with the root
    role; each of users with its password and a role of its own with exactly
    its prefixes, read-write; any other user and role removed; authentication
    on. Raises EtcdError naming the setting when root's password is not the
    one etcd has."""
    for user in users:
        if user.name == ROOT:
            raise EtcdError("etcd_users names root: root is etcd_root_password's user; give clients names of their own")
    try:
        client.login(ROOT, root_password)
        enabled = True
    except AuthNotEnabled:
        enabled = False
    except EtcdError as exc:
        if "invalid user ID or password" in str(exc):
            raise EtcdError("etcd refused root's password: etcd_root_password is not the password etcd's root user "
                            "has; set it to that one, or change root's password with "
                            "'etcdctl user passwd root' first") from exc
        raise
    changes: list[str] = []

    def change(what: str, path: str, body: dict[str, Any]) -> None:
        changes.append(what)
        if not check_mode:
            client.call(path, body)

    present = set(client.users())
    if ROOT not in present:
        change("user root added", "auth/user/add", {"name": ROOT, "password": root_password})
    if ROOT not in present or "root" not in client.user_roles(ROOT):
        if "root" not in client.roles():
            change("role root added", "auth/role/add", {"name": "root"})
        change("role root granted to root", "auth/user/grant", {"user": ROOT, "role": "root"})
    elif not enabled:
        # Authentication is off, so root's password cannot be tried: set it.
        change("root's password set", "auth/user/changepw", {"name": ROOT, "password": root_password})

    wanted_roles = {user.role for user in users} | {"root"}
    roles = set(client.roles())
    for user in users:
        wanted = {(READWRITE, *prefix_range(prefix)) for prefix in user.prefixes}
        if user.role not in roles:
            change(f"role {user.role} added", "auth/role/add", {"name": user.role})
            have: set[tuple[str, str, str]] = set()
        else:
            have = client.role_permissions(user.role)
        for perm_type, key, end in sorted(wanted - have):
            change(f"role {user.role} may {perm_type.lower()} {key}*", "auth/role/grant",
                   {"name": user.role, "perm": {"permType": perm_type, "key": _b64(key), "range_end": _b64(end)}})
        for _, key, end in sorted(have - wanted):
            change(f"role {user.role} no longer reaches {key}", "auth/role/revoke",
                   {"role": user.role, "key": _b64(key), "range_end": _b64(end)})
        if user.name not in present:
            change(f"user {user.name} added", "auth/user/add", {"name": user.name, "password": user.password})
            granted: list[str] = []
        else:
            if not enabled or not client.password_works(user.name, user.password):
                change(f"user {user.name}'s password set", "auth/user/changepw",
                       {"name": user.name, "password": user.password})
            granted = client.user_roles(user.name)
        if user.role not in granted:
            change(f"role {user.role} granted to {user.name}", "auth/user/grant",
                   {"user": user.name, "role": user.role})
        for extra in sorted(set(granted) - {user.role}):
            change(f"role {extra} revoked from {user.name}", "auth/user/revoke", {"name": user.name, "role": extra})

    for name in sorted(present - {user.name for user in users} - {ROOT}):
        change(f"user {name} removed", "auth/user/delete", {"name": name})
    for name in sorted(roles - wanted_roles):
        change(f"role {name} removed", "auth/role/delete", {"role": name})
    if not enabled:
        change("authentication enabled", "auth/enable", {})
    return changes


def ensure_member(client: EtcdClient, root_password: str, name: str, peer_url: str, *,
                  check_mode: bool = False) -> list[str]:
    """Make a running cluster expect a member that has no data yet (new, or
    rebuilt after its disk was lost) at peer_url, before it starts with
    ETCD_INITIAL_CLUSTER_STATE=existing. The cluster's entry for the member
    it replaces (its name or URL) is removed first: a member that lost its
    data cannot come back under its old identity, whose log the others
    remember. An entry added and not started yet (no name) is the one
    wanted, and left as it is. Says what changed (or would)."""
    client.login(ROOT, root_password)
    members = client.call("cluster/member/list", {}).get("members", [])
    if any(m.get("peerURLs", []) == [peer_url] and not m.get("name") for m in members):
        return []
    changes: list[str] = []
    for member in members:
        if member.get("name") == name or peer_url in member.get("peerURLs", []):
            changes.append(f"member {member.get('name') or member['ID']} at {', '.join(member.get('peerURLs', []))} "
                           "removed (it lost its data)")
            if not check_mode:
                client.call("cluster/member/remove", {"ID": member["ID"]})
    changes.append(f"member {name} at {peer_url} added")
    if not check_mode:
        # Right after a removal etcd refuses an addition ("unhealthy cluster")
        # until the members left have been connected for its health interval (5 s).
        deadline = time.monotonic() + ADD_PATIENCE
        while True:
            try:
                client.call("cluster/member/add", {"peerURLs": [peer_url]})
                break
            except EtcdError as exc:
                if "unhealthy cluster" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    return changes
