"""`pgbackrest verify`, read properly: it exits 0 even when it finds damaged
or missing files, so its verdict is in its text output, and that is what
counts here.

What the text says (2.45, --verbose):

    stanza: main
    status: error
      archiveId: 15-1, total WAL checked: 5, total valid WAL: 5
        missing: 0, checksum invalid: 0, size invalid: 0, other: 0
      backup: 20261204-040828F, status: invalid, total files checked: 964, total valid files: 963
        missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .engine import Pgbackrest

_ITEM = re.compile(r"^\s*(archiveId|backup): (?P<name>[^,]+), (?P<rest>.*)$")
_COUNTS = re.compile(r"(missing|checksum invalid|size invalid|other): (\d+)")
_TOTALS = re.compile(r"total (?:WAL|files) checked: (\d+), total valid (?:WAL|files): (\d+)")


@dataclass(frozen=True)
class Checked:
    kind: str  # "archive" (one WAL archive id) or "backup" (one backup set)
    name: str
    checked: int
    valid: int
    problems: dict[str, int]  # missing, checksum invalid, size invalid, other: counts above zero

    def text(self) -> str:
        found = ", ".join(f"{n} {what}" for what, n in self.problems.items())
        return f"{self.kind} {self.name}: {self.valid} of {self.checked} valid ({found})"


@dataclass(frozen=True)
class VerifyReport:
    repo: int
    status: str  # pgBackRest's: ok or error
    items: list[Checked] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and all(i.valid == i.checked and not i.problems for i in self.items)

    @property
    def problems(self) -> list[str]:
        return [i.text() for i in self.items if i.problems or i.valid != i.checked]

    def text(self) -> str:
        if self.ok:
            return f"repo{self.repo}: verify ok ({len(self.items)} archive ids and backups checked)"
        return f"repo{self.repo}: verify found damage: " + "; ".join(self.problems or [f"status {self.status}"])


def parse_verify(repo: int, text: str) -> VerifyReport:
    status = "unknown"
    items: list[Checked] = []
    for line in text.splitlines():
        if line.startswith("status: "):
            status = line.split(": ", 1)[1].strip()
        elif match := _ITEM.match(line):
            totals = _TOTALS.search(match["rest"])
            checked, valid = (int(totals[1]), int(totals[2])) if totals else (0, 0)
            items.append(Checked("archive" if match[1] == "archiveId" else "backup", match["name"], checked, valid, {}))
        elif items and (counts := _COUNTS.findall(line)):
            last = items[-1]
            items[-1] = Checked(last.kind, last.name, last.checked, last.valid,
                                {what: int(n) for what, n in counts if int(n)})
    return VerifyReport(repo, status, items)


def verify(engine: Pgbackrest, repo: int) -> VerifyReport:
    return parse_verify(repo, engine.run("verify", f"--repo={repo}", "--output=text", "--verbose"))
