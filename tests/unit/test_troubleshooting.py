"""docs/TROUBLESHOOTING.md keeps up with the code: every error message that
pgharbor's modules, their logic and its roles and playbooks can emit is
found by reading the source (exceptions raised with a message, fail_json,
the problems a check reports, assert fail_msg and fail msg in YAML, the
libpq messages pg_conn_check explains), and its longest fixed part must be
quoted in the document; every message the document quotes must still be
emitted somewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from pgharbor.link.check import HINTS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "TROUBLESHOOTING.md"
# A message's fixed part shorter than this is a wrapper around another
# message (f"{where}: {exc}"), which is documented where it comes from.
SHORTEST = 12
LISTS_OF_PROBLEMS = {"problems", "found"}


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _fragments(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += value.value
            else:
                parts.append(current)
                current = ""
        return parts + [current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _fragments(node.left) + _fragments(node.right)
    return []


def _message_argument(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
        func = node.exc.func
        name = getattr(func, "id", getattr(func, "attr", ""))
        return node.exc.args[0] if name.endswith("Error") else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "fail_json":
            return next((kw.value for kw in node.keywords if kw.arg == "msg"), None)
        target = node.func.value
        owner = getattr(target, "attr", getattr(target, "id", ""))
        if node.func.attr == "append" and owner in LISTS_OF_PROBLEMS and node.args:
            return node.args[0]
    return None


def python_messages() -> dict[str, str]:
    """The longest fixed part of each message -> where it is emitted."""
    found = {}
    for path in sorted([*(REPO / "module_utils" / "pgharbor").rglob("*.py"), *(REPO / "library").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            argument = _message_argument(node)
            if argument is None:
                continue
            longest = max((_normal(f) for f in _fragments(argument)), key=len, default="")
            if len(longest) >= SHORTEST:
                found[longest] = f"{path.relative_to(REPO)}:{node.lineno}"
    return found


def _yaml_messages(node, where: str, found: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _yaml_messages(item, where, found)
    elif isinstance(node, dict):
        texts = [node.get("fail_msg")]
        if isinstance(node.get("ansible.builtin.fail"), dict):
            texts.append(node["ansible.builtin.fail"].get("msg"))
        for text in texts:
            if isinstance(text, str):
                parts = [_normal(p) for p in re.split(r"\{\{.*?\}\}|\{%.*?%\}", text, flags=re.S)]
                longest = max(parts, key=len, default="")
                if len(longest) >= SHORTEST:
                    found[longest] = f"{where}: {node.get('name', '?')}"
        for value in node.values():
            _yaml_messages(value, where, found)


def yaml_messages() -> dict[str, str]:
    found: dict[str, str] = {}
    paths = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("playbooks/*.yml"), *REPO.glob("playbooks/imports/*.yml")]
    for path in sorted(paths):
        _yaml_messages(yaml.safe_load(path.read_text()), str(path.relative_to(REPO)), found)
    return found


def libpq_messages() -> dict[str, str]:
    """The libpq messages pg_conn_check names a cause for."""
    return {needle: "module_utils/pgharbor/link/check.py: HINTS" for needle, _, _ in HINTS}


def documented() -> str:
    return _normal(DOC.read_text().replace("`", "").replace("\\|", "|"))


def test_the_source_has_messages_to_document():
    assert len(python_messages()) > 80 and len(yaml_messages()) > 20


def test_every_message_is_in_the_troubleshooting_guide():
    text = documented()
    messages = {**python_messages(), **yaml_messages(), **libpq_messages()}
    missing = [f"{where}: {message!r}" for message, where in messages.items()
               if message not in text]
    assert missing == [], "add these to docs/TROUBLESHOOTING.md (message, cause, fix):\n" + "\n".join(missing)


def test_every_quoted_message_is_still_emitted():
    """Each message row of the guide (| `message` | cause | fix |) holds a
    fixed part that the source still emits."""
    known = [*python_messages(), *yaml_messages(), *libpq_messages()]
    stale = []
    for row in re.findall(r"^\| `(.+?)` \|", DOC.read_text(), re.M):
        quoted = _normal(row.replace("\\|", "|"))
        if not any(fragment in quoted for fragment in known):
            stale.append(quoted)
    assert stale == [], "docs/TROUBLESHOOTING.md quotes messages nothing emits any more:\n" + "\n".join(stale)
