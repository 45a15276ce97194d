"""Patroni as pgharbor drives it: the cluster's state read from each member's
REST API, the settings every member must share (Patroni's dynamic
configuration, kept in etcd) brought to the declared state, and a planned
switchover that refuses a standby that is behind.

Reading needs no login; changing anything (PATCH /config, POST /switchover,
POST /restart) logs in with the API's user. The API speaks HTTPS with a
certificate of the CA given; the standard library is enough."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import PgharborError

PRIMARY_ROLES = ("master", "primary")

# The options every Patroni module takes (documented in the doc fragment pgharbor_patroni).
PATRONI_OPTIONS: dict[str, dict[str, Any]] = {
    "api_url": {"type": "str", "required": True},
    "ca": {"type": "path", "required": True},
    "api_user": {"type": "str", "default": "patroni"},
    "api_password": {"type": "str", "required": True, "no_log": True},
}


class PatroniError(PgharborError):
    pass


class SwitchoverRefusedError(PatroniError):
    """The switchover was not attempted: the cluster is not in a state where it is safe."""


class PatroniClient:
    """One member's REST API (https://host:8008), its CA, and the API's login for changes."""

    def __init__(self, url: str, ca_file: str, user: str = "", password: str = "", timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.ca_file = ca_file
        self.context = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout
        self._login = (user, password)
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""

    def at(self, url: str) -> PatroniClient:
        """The same CA and login for another member's API (its api_url from /cluster)."""
        base = url.split("/patroni", 1)[0]
        return PatroniClient(base, self.ca_file, *self._login, timeout=self.timeout)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float | None = None) -> tuple[int, Any]:
        """(HTTP status, the answer as JSON or text). Patroni answers 503 with a
        JSON body for a member that is not what the path asks (e.g. not the
        primary), so statuses are returned, not raised; a member that does not
        answer at all raises."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        if self._auth and method != "GET":
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout, context=self.context) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise PatroniError(f"Patroni at {self.url} refused the API login for {method} {path}: "
                                   "postgresql_server_ha_api_user/postgresql_server_ha_api_password are not the ones "
                                   "the members' restapi.authentication has") from exc
            return exc.code, _decode(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise PatroniError(f"Patroni at {self.url} did not answer {method} {path}: {getattr(exc, 'reason', exc)} "
                               "(is patroni running there, and does its certificate chain to the CA given?)") from exc

    def state(self) -> dict[str, Any]:
        """This member's own view (GET /patroni): role, state, timeline, WAL positions, pending_restart."""
        return self.call("GET", "/patroni")[1]

    def cluster(self) -> dict[str, Any]:
        status, answer = self.call("GET", "/cluster")
        if status != 200:
            raise PatroniError(f"Patroni at {self.url} could not list the cluster ({status}): {answer}")
        return answer

    def dynamic_config(self) -> dict[str, Any]:
        status, answer = self.call("GET", "/config")
        if status != 200 or not isinstance(answer, dict):
            raise PatroniError(f"Patroni at {self.url} has no cluster configuration yet ({status}): {answer}")
        return answer


def _decode(raw: bytes) -> Any:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # leader, replica, sync_standby, standby_leader
    state: str  # running, streaming (3.0 says running), stopped, starting, ...
    api_url: str
    timeline: int | None
    lag: int | None  # bytes behind the leader as Patroni counts it; None when unknown

    @property
    def is_leader(self) -> bool:
        return self.role in ("leader", "standby_leader")


def members(client: PatroniClient) -> list[Member]:
    out = []
    for m in client.cluster().get("members", []):
        lag = m.get("lag")
        out.append(Member(m["name"], m.get("role", ""), m.get("state", ""), m.get("api_url", ""),
                          m.get("timeline"), lag if isinstance(lag, int) else None))
    return out


@dataclass(frozen=True)
class Position:
    """A standby's replay against its leader's current WAL position (as
    Patroni last read them, every loop_wait). Patroni resumes a paused replay
    by itself; a standby stays behind when its replay is delayed
    (recovery_min_apply_delay) or cannot keep up."""
    leader_lsn: int
    received_lsn: int
    replayed_lsn: int

    @property
    def replay_lag(self) -> int:
        return max(0, self.leader_lsn - self.replayed_lsn)


def position(leader: PatroniClient, standby: PatroniClient) -> Position:
    leader_state, standby_state = leader.state(), standby.state()
    if leader_state.get("role") not in PRIMARY_ROLES:
        raise PatroniError(f"{leader.url} is not the primary (its role: {leader_state.get('role')})")
    xlog = standby_state.get("xlog", {})
    if "replayed_location" not in xlog:
        raise PatroniError(f"{standby.url} is not a running standby (state {standby_state.get('state')}, "
                           f"role {standby_state.get('role')})")
    return Position(int(leader_state["xlog"]["location"]), int(xlog.get("received_location") or 0),
                    int(xlog["replayed_location"]))


def config_changes(current: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The part of wanted that differs from current, as a PATCH body for /config
    (nested dicts are merged by Patroni; keys not in wanted are left alone)."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, dict):
            inner = config_changes(have if isinstance(have, dict) else {}, value, f"{prefix}{key}.")
            if inner:
                patch[key] = inner
        elif not _same(have, value):
            patch[key] = value
    return patch


def _same(have: Any, want: Any) -> bool:
    """PostgreSQL parameters come back as Patroni stored them: 100 and "100", on and True are one value."""
    if isinstance(have, bool) or isinstance(want, bool):
        norm = {"on": True, "true": True, "off": False, "false": False}
        have = norm.get(str(have).lower(), have)
        want = norm.get(str(want).lower(), want)
        return have == want
    return str(have) == str(want) if have is not None else False


def describe(patch: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in sorted(patch.items()):
        have = current.get(key) if isinstance(current, dict) else None
        if isinstance(value, dict):
            out += describe(value, have if isinstance(have, dict) else {}, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {json.dumps(have)} -> {json.dumps(value)}")
    return out


def ensure_dynamic_config(client: PatroniClient, wanted: dict[str, Any], *, check_mode: bool = False) -> list[str]:
    """Bring the cluster's shared settings to wanted; say what changed (or would)."""
    current = client.dynamic_config()
    patch = config_changes(current, wanted)
    if patch and not check_mode:
        status, answer = client.call("PATCH", "/config", patch)
        if status != 200:
            raise PatroniError(f"Patroni at {client.url} refused the configuration change ({status}): {answer}")
    return describe(patch, current)


@dataclass(frozen=True)
class SwitchoverPlan:
    leader: Member
    candidate: Member
    replay_lag: int


def plan_switchover(client: PatroniClient, candidate: str | None, max_lag_bytes: int) -> SwitchoverPlan:
    """Who hands over to whom, checked: a leader, and a running standby (the one
    named, or the only one) whose replay is at most max_lag_bytes behind."""
    now = members(client)
    leaders = [m for m in now if m.is_leader]
    if not leaders:
        raise SwitchoverRefusedError(f"the cluster has no leader now ({[(m.name, m.role, m.state) for m in now]}): "
                                     "a switchover needs one; see docs/runbooks/failover.md")
    standbys = [m for m in now if not m.is_leader and (candidate is None or m.name == candidate)]
    if candidate and not standbys:
        raise SwitchoverRefusedError(f"{candidate} is not a standby of this cluster (members: "
                                     f"{', '.join(m.name for m in now)}): name one of them as "
                                     "postgresql_server_switchover_candidate")
    if not candidate and len(standbys) != 1:
        raise SwitchoverRefusedError(f"the cluster has {len(standbys)} standbys: name the one to take over "
                                     "as postgresql_server_switchover_candidate")
    chosen = standbys[0]
    if chosen.state not in ("running", "streaming"):
        raise SwitchoverRefusedError(f"{chosen.name} is {chosen.state}, not running: start it, or name another "
                                     "postgresql_server_switchover_candidate")
    where = position(client.at(leaders[0].api_url), client.at(chosen.api_url))
    if where.replay_lag > max_lag_bytes:
        raise SwitchoverRefusedError(f"{chosen.name} has replayed {where.replay_lag} bytes less than "
                                     f"{leaders[0].name} has written (the limit, "
                                     f"postgresql_server_switchover_max_lag_bytes, is {max_lag_bytes}): wait until "
                                     "it has caught up, or find why it is behind (docs/runbooks/switchover.md)")
    return SwitchoverPlan(leaders[0], chosen, where.replay_lag)


def switch_over(client: PatroniClient, plan: SwitchoverPlan, timeout: float = 60.0) -> float:
    """Carry out a checked plan; the seconds until the candidate was the
    primary and the old leader followed it."""
    leader_name, candidate = plan.leader.name, plan.candidate.name
    started = time.monotonic()
    status, answer = client.at(plan.leader.api_url).call(
        "POST", "/switchover", {"leader": leader_name, "candidate": candidate}, timeout=timeout)
    if status != 200:
        raise PatroniError(f"Patroni refused the switchover from {leader_name} to {candidate} ({status}): {answer}")
    watcher = client.at(plan.candidate.api_url)
    while True:
        now = {m.name: m for m in members(watcher)}
        new, old = now.get(candidate), now.get(leader_name)
        if new and new.is_leader and new.state == "running" and old and not old.is_leader \
                and old.state in ("running", "streaming"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise PatroniError(f"the switchover to {candidate} did not finish within {timeout:.0f} s: "
                               f"{[(m.name, m.role, m.state) for m in now.values()]}")
        time.sleep(0.5)
