"""The package's layout is its architecture: a room (subpackage) per
concern, each __init__ only a docstring, and imports that point one way,
from the command lines down to the PostgreSQL helpers and the small
helpers every room uses. A module that imports upward, or from a sibling
room (a backup module from a migration one), fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "module_utils" / "pgharbor"
# A room may import from rooms of a lower rank (and from itself; "" is the
# top: errors and the version); rooms of the same rank do not import each
# other.
RANK = {"": -1, "common": 0, "pg": 1, "migration": 2, "backup": 2, "link": 2, "timetravel": 2, "report": 2,
        "firewall": 2, "ha": 2, "tiers": 3, "cli": 4}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent == PACKAGE)


def room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def imported_rooms(path: Path) -> set[str]:
    """The rooms path imports from (relative imports resolved)."""
    found = set()
    here = path.relative_to(PACKAGE).parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:  # a room, or a module at the top (errors)
                found.add(target[0] if (PACKAGE / target[0]).is_dir() else "")
            else:  # from .. import x: x is a room, or a module at the top
                found |= {a.name if (PACKAGE / a.name).is_dir() else "" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pgharbor"):
            raise AssertionError(f"{path}: import pgharbor relatively (Ansible ships it as ansible.module_utils)")
    return found


def test_every_room_is_ranked():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert rooms == set(RANK) - {""}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    mine = room(path)
    for other in imported_rooms(path) - {mine}:
        assert RANK[other] < RANK[mine], f"{path.relative_to(PACKAGE)} ({mine}) imports from {other}"


def test_an_upward_import_is_caught(tmp_path):
    # the check itself: a backup module that reaches into migration fails it
    fake = PACKAGE / "backup" / "_probe.py"
    fake.write_text("from ..migration.datacompare import compare_rows\n")
    try:
        assert imported_rooms(fake) == {"migration"}
        with pytest.raises(AssertionError, match="imports from migration"):
            test_imports_point_down(fake)
    finally:
        fake.unlink()


@pytest.mark.parametrize("init", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_room_init_is_only_a_docstring(init):
    body = ast.parse(init.read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), \
        f"{init}: only a docstring that says what the room is for"


def test_every_error_derives_from_the_root():
    import importlib

    from pgharbor.errors import PgharborError
    for path in MODULES:
        name = ".".join(("pgharbor", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        if name.endswith(".s3"):
            pytest.importorskip("boto3")
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == name:
                assert issubclass(value, PgharborError), f"{name}.{value.__name__} is not a PgharborError"
