"""The retry code docs/CONNECTIONS.md gives applications, executed as the
page prints it: the tests prove the documented snippet, not a copy."""

from __future__ import annotations

from pathlib import Path


def documented_snippet(repo: Path) -> dict:
    text = (repo / "docs" / "CONNECTIONS.md").read_text()
    code = text.split("<!-- retry-snippet -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/CONNECTIONS.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace
