"""Which entries of a pg_restore listing the migration restores."""

from __future__ import annotations

from pgharbor.pg.sections import Existing, filter_toc

LISTING = """;
; Archive created at 2026-11-24 10:00:00 UTC
;
215; 2615 16385 SCHEMA - app legacy_owner
216; 2615 16386 SCHEMA - reports legacy_owner
2; 3079 16390 EXTENSION - pgcrypto
3401; 0 0 COMMENT - EXTENSION pgcrypto
220; 1259 16400 TABLE app events legacy_owner
3402; 0 0 ACL - SCHEMA app legacy_owner
3403; 0 0 DEFAULT ACL - DEFAULT PRIVILEGES FOR TABLES app legacy_owner
221; 2613 424242 BLOB - 424242 legacy_owner
"""


def entries(listing: str) -> list[str]:
    return [line.split(" ", 3)[3] for line in listing.splitlines() if line[:1].isdigit()]


def test_existing_schemas_and_extensions_privileges_and_blobs_are_left_out():
    kept = filter_toc(LISTING, Existing(schemas=frozenset({"app", "public"}), extensions=frozenset({"pgcrypto"})))
    assert entries(kept) == ["SCHEMA - reports legacy_owner", "TABLE app events legacy_owner"]


def test_what_the_target_lacks_is_restored():
    kept = filter_toc(LISTING, Existing(schemas=frozenset(), extensions=frozenset()))
    assert "SCHEMA - app legacy_owner" in entries(kept)
    assert "EXTENSION - pgcrypto" in entries(kept)
    assert "COMMENT - EXTENSION pgcrypto" in entries(kept)


def test_comment_lines_are_kept():
    assert filter_toc(LISTING, Existing(frozenset(), frozenset())).startswith(";\n; Archive created")
