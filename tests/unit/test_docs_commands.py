"""The commands the documentation gives operators exist: every `make
<target>` is a Makefile target or one of its playbook shortcuts, every
playbook named is in playbooks/, and every `-e <variable>=` given to a
playbook is a variable the playbooks or roles read. A renamed target or
variable breaks this test before it breaks an operator's night."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([*REPO.glob("docs/**/*.md"), REPO / "README.md"])
MAKEFILE = (REPO / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE, re.M))
SHORTCUTS = set(re.search(r"^PLAYBOOKS := (.*)$", MAKEFILE, re.M).group(1).split())
PLAYBOOKS = {p.stem for p in (REPO / "playbooks").glob("*.yml")}
SOURCES = "\n".join(p.read_text() for p in [*REPO.glob("playbooks/*.yml"), *REPO.glob("roles/*/*/*.yml")])


def test_the_shortcuts_are_the_playbooks():
    assert {s.replace("-", "_") for s in SHORTCUTS} == PLAYBOOKS


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_documented_commands_exist(doc):
    text = doc.read_text()
    targets = set(re.findall(r"`make ([a-z][a-z0-9-]*)", text)) | set(re.findall(r"^\s*make ([a-z][a-z0-9-]*)", text,
                                                                                    re.M))
    assert targets <= TARGETS | SHORTCUTS, f"{doc.name}: no such make target: {targets - TARGETS - SHORTCUTS}"
    named = set(re.findall(r"(?<!/)playbooks/([a-z_]+)\.yml", text)) | set(re.findall(r"bin/play \S+ ([a-z_]+)", text))
    assert named <= PLAYBOOKS | {"<playbook>"}, f"{doc.name}: no such playbook: {named - PLAYBOOKS}"
    variables = set(re.findall(r"-e ([a-z_]+)=", text))
    unread = {v for v in variables if not re.search(rf"\b{v}\b", SOURCES)}
    assert unread == set(), f"{doc.name}: no playbook or role reads {unread}"
