#!/usr/bin/env python3
"""What the row text form costs in pg_compare's chunk hash: the whole row as
"t::text" (which reads a column named t where a table has one, the bug) and
as "ROW(t.*)::text" (which can only mean the row, the fix), on one throwaway
server, the order alternated between rounds, medians and every run printed.

    .venv/bin/python benchmarks/rowhash.py [--rows 2000000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from pgserver import start_server  # noqa: E402

FORMS = ("t::text", "ROW(t.*)::text")
# The chunk hash of pgharbor.pg.rows.chunk_hashes, with the row form swapped.
QUERY = """SELECT count(*), md5(string_agg(r, E'\\n' ORDER BY n)) FROM (
               SELECT {form} AS r, row_number() OVER (ORDER BY t.id) - 1 AS n FROM rows t
           ) numbered GROUP BY n / 10000"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    server = start_server()
    try:
        with server.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE rows AS SELECT n AS id, md5(n::text) AS a, jsonb_build_object('n', n) AS b, "
                         "now() AS at FROM generate_series(1, %s) n", (args.rows,))
            conn.execute("VACUUM ANALYZE rows")
            seconds: dict[str, list[float]] = {form: [] for form in FORMS}
            for round_ in range(args.rounds):
                for form in FORMS if round_ % 2 == 0 else FORMS[::-1]:
                    started = time.monotonic()
                    conn.execute(QUERY.format(form=form)).fetchall()
                    seconds[form].append(time.monotonic() - started)
        for form, runs in seconds.items():
            print(f"{form}: median {statistics.median(runs):.2f} s, runs {', '.join(f'{s:.2f}' for s in runs)}")
    finally:
        server.remove()


if __name__ == "__main__":
    main()
