"""`ansible-doc` works for every custom module, and what it shows is what
the module takes: every option of the argument spec is documented with the
same type, default and choices (suboptions too), nothing documented is
missing from the spec, every secret is no_log, EXAMPLES and RETURN are
there, and check mode is supported."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "library").glob("*.py"))
# Option names that hold a secret (a path to one is not one).
SECRET = re.compile(r"password|passphrase|secret|private_key|_key$")
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")


@pytest.fixture(scope="module")
def docs() -> dict:
    done = subprocess.run([ANSIBLE_DOC, "-t", "module", "--json", *MODULES], cwd=REPO, capture_output=True,
                          text=True, check=False, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Captured(Exception):
    pass


def module_spec(name: str) -> dict:
    """The keyword arguments the module gives AnsibleModule, caught before it
    would read its parameters."""
    import pgharbor

    # Where Ansible would put module_utils/pgharbor for the module
    sys.modules.setdefault("ansible.module_utils.pgharbor", pgharbor)
    seen: dict = {}

    def capture(**kwargs):
        seen.update(kwargs)
        raise Captured

    spec = importlib.util.spec_from_file_location(f"pgharbor_module_{name}", REPO / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.AnsibleModule = capture  # the module's own name for it, bound at import
    with pytest.raises(Captured):
        module.main()
    return seen


def test_every_module_is_listed():
    assert len(MODULES) >= 12 and "pg_conn_check" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_shows_documentation_examples_and_return(docs, name):
    entry = docs[name]
    assert entry["doc"]["short_description"] and entry["doc"]["description"], f"{name}: DOCUMENTATION"
    assert entry["examples"] and f"{name}:" in entry["examples"], f"{name}: EXAMPLES must use the module"
    assert entry["return"], f"{name}: RETURN"
    for key, value in entry["return"].items():
        assert value.get("description") and value.get("returned") and value.get("type"), f"{name}: RETURN {key}"


def compare(name: str, where: str, spec: dict, documented: dict) -> list[str]:
    problems = [f"{name}: {where}{o} is in the argument spec but not documented" for o in spec.keys() - documented]
    problems += [f"{name}: {where}{o} is documented but not in the argument spec" for o in documented.keys() - spec]
    for option in spec.keys() & documented.keys():
        s, d = spec[option], documented[option]
        for field, default in (("type", "str"), ("default", None), ("choices", None), ("elements", None),
                               ("required", False)):
            if s.get(field, default) != d.get(field, default):
                problems.append(f"{name}: {where}{option} {field}: spec {s.get(field, default)!r}, "
                                f"documented {d.get(field, default)!r}")
        if SECRET.search(option) and s.get("type", "str") == "str" and not s.get("no_log"):
            problems.append(f"{name}: {where}{option} holds a secret and needs no_log: true")
        if "options" in s or "suboptions" in d:
            problems += compare(name, f"{where}{option}.", s.get("options", {}), d.get("suboptions", {}))
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_argument_spec(docs, name):
    kwargs = module_spec(name)
    assert kwargs.get("supports_check_mode") is True, f"{name}: supports_check_mode"
    assert compare(name, "", kwargs["argument_spec"], docs[name]["doc"].get("options", {})) == []


# One name per meaning across the modules: a connection is always <end> (a
# conninfo) and <end>_password, from the shared spec; a list of tiers is
# always `tiers`; S3 credentials are always s3_access_key_id and
# s3_secret_access_key. Names that meant something else elsewhere are gone.
RETIRED = {"conninfo", "password", "access_key_id", "secret_access_key"}


def naming_problems(spec: dict) -> list[str]:
    from pgharbor.pg.conninfo import ENDS, connection_options
    from pgharbor.tiers.options import TIERS, s3_options

    problems = [f"{option}: a retired name (use <end>_password, s3_access_key_id)" for option in RETIRED & set(spec)]
    for end in ENDS:
        if end in spec:
            shared = connection_options(end, required=spec[end].get("required", False),
                                        default=spec[end].get("default"))
            if {k: spec.get(k) for k in shared} != shared:
                problems.append(f"{end}: not from connection_options")
        elif f"{end}_password" in spec:
            problems.append(f"{end}_password without {end}")
    for option, entry in spec.items():
        if entry.get("type") == "list" and entry.get("choices") == TIERS and option != "tiers":
            problems.append(f"{option}: a list of tiers is called tiers")
        if option.startswith("s3") and entry != s3_options().get(option):
            problems.append(f"{option}: not from s3_options")
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_one_name_per_meaning(name):
    assert naming_problems(module_spec(name)["argument_spec"]) == [], name


def test_a_second_name_is_caught():
    # what the modules had before: db/password, a tier list called source, S3 keys without s3_
    old = {"db": {"type": "str", "required": True}, "password": {"type": "str", "no_log": True},
           "source": {"type": "list", "elements": "str", "choices": ["tier1", "tier2", "tier3"]},
           "s3_key": {"type": "str"}, "server_password": {"type": "str", "no_log": True}}
    found = naming_problems(old)
    assert set(found) == {"password: a retired name (use <end>_password, s3_access_key_id)",
                          "db: not from connection_options", "source: not from connection_options",
                          "source: a list of tiers is called tiers", "s3_key: not from s3_options",
                          "server_password without server"}, found
