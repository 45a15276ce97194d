#!/usr/bin/python
"""Ansible wrapper around pgharbor.timetravel (pastcopy, preview, extract)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_past_copy
short_description: The cluster as it was at a point in time, beside the live one; compare, take rows back, drop it
description:
  - "C(state=present): pgBackRest restores the cluster as it was at O(time) (a time, or C(latest)) or at
    O(restore_point) into O(directory), from the nearest repository whose restorable window covers the target (or
    O(repo)). The copy listens on a Unix socket in its own directory only, fetches its WAL from the repository, never
    archives (C(--archive-mode=off)), and pauses at the target. The live cluster and the application are untouched.
    Returns a preview of O(database): rows per table, past against live, and for O(table) the keys of the rows that
    differ. A copy already there for the same target is kept (no change); one for another target is refused."
  - "C(state=extracted): copies rows of O(table) (those O(where) picks) from the past copy into the live O(database),
    in one transaction: with O(mode=missing) the rows whose primary key the live table lacks; with O(mode=side) every
    chosen row into a new table in O(side_schema)."
  - "C(state=swapped): the past becomes live. O(database) is loaded from the past copy into a new database
    C(<database>_past) beside the live one (pg_dump piped into pg_restore, owners and grants as they were), which then
    takes the live name; the live database is kept as C(<database>_before_restore_<UTC time>). Sessions are
    disconnected only for the two renames. The live cluster goes on archiving on its own timeline. What was swapped
    is recorded in O(state_file) first; a second run changes nothing."
  - "C(state=undone): the database the swap replaced takes the live name again; the past one is kept as
    C(<database>_undone_<UTC time>). Without a recorded swap nothing changes."
  - "C(state=absent): stops the past copy and removes its directory. A swap stays as it is (its database lives in
    the live cluster)."
  - A target outside every repository's window is refused, naming each window; so is a directory without room for
    the copy.
  - In check mode, reports what would be done without doing it.
version_added: "0.2.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_timetravel, pgharbor_attributes]
options:
  state:
    description: What to do.
    type: str
    choices: [present, extracted, swapped, undone, absent]
    default: present
  time:
    description: The time to restore to, ISO 8601 with its time zone (C(2026-12-04 10:03:00+00:00)), or C(latest)
      (the newest archived WAL).
    type: str
    default: latest
  restore_point:
    description: A restore point's name (C(pg_create_restore_point)) to restore to, instead of O(time).
    type: str
  repo:
    description: The repository to restore from (1 on this host, 2 in the bucket); default the nearest that covers the
      target.
    type: int
  repo_path:
    description: "A directory holding a copy of repository O(repo), read instead of where pgBackRest's configuration
      puts it (with that repository's passphrase): a snapshot fetched from tier 2 (O(repo=1)), or tier 3 rebuilt as of
      a time by C(pgharbor-timetravel rebuild) (O(repo=2)). Requires O(repo)."
    type: path
  directory:
    description: The past copy's data directory; its parent must hold the cluster's size.
    type: path
    default: /var/lib/postgresql/pgharbor-past
  port:
    description: The past copy's port (its socket is in O(directory), so it never meets the live server's).
    type: int
    default: 5432
  database:
    description: The database to preview and extract from (the same name in the past copy and live).
    type: str
  table:
    description: C(schema.table) whose differing rows the preview lists by key, or whose rows O(state=extracted)
      copies.
    type: str
  where:
    description: With O(state=extracted), an SQL condition on O(table)'s columns that picks the rows (default all).
    type: str
  mode:
    description: With O(state=extracted), C(missing) (rows whose key the live table lacks go into it) or C(side)
      (rows go into a new table O(side_schema).C(<schema>_<table>)).
    type: str
    choices: [missing, side]
    default: missing
  side_schema:
    description: The schema O(mode=side) creates its table in.
    type: str
    default: pgharbor_past
  state_file:
    description: Where a swap is recorded, for O(state=undone) and for the second run of O(state=swapped).
    type: path
    default: /var/lib/pgharbor/timetravel/swap.json
  server:
    description: libpq connection string of a superuser on the live server (its Unix socket).
    type: str
    default: host=/var/run/postgresql dbname=postgres user=postgres
  server_password:
    description: Password for O(server).
    type: str
requirements:
  - pgBackRest (the pg_timetravel role), psycopg >= 3.1 and the PostgreSQL server binaries where the module runs; run
    it as the postgres user (C(become_user))
"""

EXAMPLES = r"""
- name: The cluster as it was at 10:03, beside the live one, with the orders that differ
  pg_past_copy:
    time: "2026-12-04 10:03:00+00:00"
    database: buffer
    table: buffer.orders
  become: true
  become_user: postgres

- name: The orders deleted since, back into the live table
  pg_past_copy:
    state: extracted
    database: buffer
    table: buffer.orders
    where: "created < '2026-12-04 10:03'"
  become: true
  become_user: postgres

- name: The past becomes live (the live database is kept beside it)
  pg_past_copy:
    state: swapped
    database: buffer
  become: true
  become_user: postgres

- name: Undo the swap
  pg_past_copy:
    state: undone
  become: true
  become_user: postgres

- name: Drop the past copy
  pg_past_copy:
    state: absent
  become: true
  become_user: postgres
"""

RETURN = r"""
copy:
  description: What was restored, where, and how far recovery went.
  returned: state=present or extracted, not in check mode
  type: dict
  sample: {target: "2026-12-04 10:03:00.000000 UTC", repo: 1, tier: tier1, backup: 20261204-010002F, port: 5432,
           directory: /var/lib/postgresql/pgharbor-past, state: paused, reached: "2026-12-04T10:02:59.811+00:00",
           restored: "2026-12-04T11:20:31+00:00", seconds: 41.2}
preview:
  description: Rows per table of O(database), past against live; with O(table), the keys of the rows that differ.
  returned: state=present, with O(database), not in check mode
  type: dict
  sample: {tables: [{table: buffer.orders, past: 1200, live: 1195, difference: -5}],
           rows: {table: buffer.orders, key: [id], only_past: ["50", "51"], only_live: [], changed: ["60"],
                  counts: {only_past: 2, only_live: 0, changed: 1, same: 1197}}}
swap:
  description: What the swap or its undo did.
  returned: state=swapped or undone, when a swap is recorded, not in check mode
  type: dict
  sample: {live: buffer, previous: buffer_before_restore_20261204T112040Z, restored: buffer_past,
           backup: "past copy of 2026-12-04 10:03:00.000000 UTC", swapped: "2026-12-04T11:20:40Z",
           disconnected_seconds: 0.041, loaded_seconds: 12.3}
extracted:
  description: The rows copied back.
  returned: state=extracted, not in check mode
  type: dict
  sample: {table: buffer.orders, mode: missing, into: buffer.orders, read: 21, inserted: 5, skipped: 16}
"""

import json
import time
from dataclasses import asdict
from pathlib import Path

import psycopg
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.pg import session
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo
from ansible.module_utils.pgharbor.pg.swap import swap, undo
from ansible.module_utils.pgharbor.timetravel.extract import MODES, extract
from ansible.module_utils.pgharbor.timetravel.options import engine_from, timetravel_options
from ansible.module_utils.pgharbor.timetravel.pastcopy import PastCopy, PastCopyError, Target, existing, restore_past
from ansible.module_utils.pgharbor.timetravel.preview import row_diff, table_counts
from ansible.module_utils.pgharbor.timetravel.swap import UNDO_WITH, load_past, loaded_name
from ansible.module_utils.pgharbor.timetravel.window import repo_states
from psycopg.conninfo import make_conninfo


def live_conninfo(params: dict, database: str) -> str:
    return make_conninfo(conninfo(params, "server"), dbname=database)


def describe(copy: PastCopy, seconds: float | None = None) -> dict:
    state = copy.state()
    reached = copy.reached() if state in ("paused", "promoted") else None
    return {**copy.record(), "directory": str(copy.datadir), "state": state,
            "reached": reached.isoformat() if reached else None,
            **({"seconds": round(seconds, 1)} if seconds is not None else {})}


def preview(copy: PastCopy, params: dict) -> dict:
    with session.connect(copy.conninfo(params["database"])) as past, \
            session.connect(live_conninfo(params, params["database"])) as live:
        result: dict = {"tables": [{**asdict(c), "difference": c.difference} for c in table_counts(past, live)]}
        if params["table"]:
            result["rows"] = asdict(row_diff(past, live, params["table"]))
        return result


def present(module: AnsibleModule, target: Target) -> None:
    p = module.params
    directory = Path(p["directory"])
    copy = existing(directory)
    changed = False
    if copy is not None:
        if copy.record().get("target") != target.text():
            raise PastCopyError(f"{directory} holds a past copy of {copy.record().get('target')}, not of "
                                f"{target.text()}: drop it first (state absent), or restore into another directory")
        if copy.state() == "stopped":
            if module.check_mode:
                module.exit_json(changed=True)
            copy.start()
            changed = True
        seconds = None
    else:
        engine = engine_from(p)
        if p["repo_path"]:
            engine = engine.at(p["repo"], Path(p["repo_path"]))
        states = repo_states(engine)
        if module.check_mode:
            module.exit_json(changed=True)
        begin = time.monotonic()
        copy, _ = restore_past(engine, states, target, directory, p["port"], p["repo"])
        seconds, changed = time.monotonic() - begin, True
    result = {"changed": changed, "copy": describe(copy, seconds)}
    if p["database"]:
        result["preview"] = preview(copy, p)
    module.exit_json(**result)


def running(copy: PastCopy | None, directory: str) -> PastCopy:
    if copy is None or copy.state() not in ("paused", "promoted"):
        raise PastCopyError(f"no running past copy in {directory}: restore one first (state present)")
    return copy


def swapped(module: AnsibleModule, copy: PastCopy | None) -> None:
    p = module.params
    state_file = Path(p["state_file"])
    admin = conninfo(p, "server")
    recorded = json.loads(state_file.read_text()) if state_file.exists() else None
    if recorded and recorded.get("live") == p["database"] and recorded.get("restored") == loaded_name(p["database"]):
        module.exit_json(changed=False, swap=recorded)  # swapped before: nothing to load again
    copy = running(copy, p["directory"])
    if module.check_mode:
        module.exit_json(changed=True, copy=describe(copy))
    name, _, seconds = load_past(copy, admin, p["database"])
    done = swap(admin, p["database"], name, state_file, undo_with=UNDO_WITH)
    module.exit_json(changed=True, swap={**done, "loaded_seconds": seconds}, copy=describe(copy))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **timetravel_options(),
            "state": {"type": "str", "choices": ["present", "extracted", "swapped", "undone", "absent"],
                      "default": "present"},
            "time": {"type": "str", "default": "latest"},
            "restore_point": {"type": "str"},
            "repo": {"type": "int"},
            "repo_path": {"type": "path"},
            "directory": {"type": "path", "default": "/var/lib/postgresql/pgharbor-past"},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str"},
            "table": {"type": "str"},
            "where": {"type": "str"},
            "mode": {"type": "str", "choices": list(MODES), "default": "missing"},
            "side_schema": {"type": "str", "default": "pgharbor_past"},
            "state_file": {"type": "path", "default": "/var/lib/pgharbor/timetravel/swap.json"},
            **connection_options("server", default="host=/var/run/postgresql dbname=postgres user=postgres"),
        },
        supports_check_mode=True,
        required_if=[("state", "extracted", ["database", "table"]), ("state", "swapped", ["database"])],
        required_by={"repo_path": "repo"},
    )
    p = module.params
    try:
        if p["state"] == "present":
            present(module, Target.parse(None if p["restore_point"] else p["time"], p["restore_point"]))
        if p["state"] == "undone":
            if module.check_mode:
                module.exit_json(changed=Path(p["state_file"]).exists())
            done = undo(conninfo(p, "server"), p["state_file"])
            module.exit_json(changed=done.pop("changed"), swap=done)
        copy = existing(Path(p["directory"]))
        if p["state"] == "swapped":
            swapped(module, copy)
        if p["state"] == "absent":
            if copy is not None and not module.check_mode:
                copy.drop()
            module.exit_json(changed=copy is not None)
        copy = running(copy, p["directory"])
        if module.check_mode:
            module.exit_json(changed=True, copy=describe(copy))
        with session.connect(copy.conninfo(p["database"])) as past, \
                session.connect(live_conninfo(p, p["database"])) as live:
            done = extract(past, live, p["table"], mode=p["mode"], where=p["where"], side_schema=p["side_schema"])
        module.exit_json(changed=done.inserted > 0 or done.mode == "side", extracted=asdict(done), copy=describe(copy))
    except (PgharborError, psycopg.Error) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
