"""The daily report's arithmetic without a Prometheus: alert spans from
ALERTS' points, figures as a person reads them, old pages removed."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pgharbor.cli.pgharbor_report import prune_pages
from pgharbor.report.daily import alert_spans
from pgharbor.report.figures import duration, signed_size, size
from pgharbor.report.promapi import Series

STEP = 60.0


def firing(name: str, *minutes: range) -> Series:
    return Series({"alertname": name, "instance": "db1", "severity": "warning"},
                  [(m * STEP, 1.0) for run in minutes for m in run])


def test_one_run_of_points_is_one_firing_resolved_a_step_after_its_last_point():
    (span,) = alert_spans([firing("LinkDown", range(10, 20))], end=100 * STEP, step=STEP)
    assert (span.fired, span.resolved) == (10 * STEP, 20 * STEP)


def test_a_gap_splits_two_firings_and_one_that_reaches_the_end_still_fires():
    spans = alert_spans([firing("LinkDown", range(10, 20), range(30, 101))], end=100 * STEP, step=STEP)
    assert [(s.fired, s.resolved) for s in spans] == [(10 * STEP, 20 * STEP), (30 * STEP, None)]


def test_a_missed_evaluation_is_not_a_resolution():
    # One point missing (an evaluation that came late) is within 1.5 steps of its neighbours.
    points = [(t * STEP + (20 if t == 15 else 0), 1.0) for t in range(10, 20)]
    (span,) = alert_spans([Series({"alertname": "X"}, points)], end=100 * STEP, step=STEP)
    assert span.resolved == 20 * STEP


def test_spans_of_several_alerts_come_in_the_order_they_fired():
    spans = alert_spans([firing("B", range(50, 60)), firing("A", range(5, 8))], end=100 * STEP, step=STEP)
    assert [s.name for s in spans] == ["A", "B"]


def test_durations_and_sizes_read_as_a_person_would_say_them():
    assert [duration(v) for v in (0.0012, 0.25, 42, 95, 600, 7200, 18000, 3 * 86400, None)] == \
        ["1.2 ms", "250 ms", "42 s", "1.6 min", "10 min", "2.0 h", "5.0 h", "3.0 d", "-"]
    assert [size(v) for v in (512, 200 * 1024 ** 2, 1.5 * 1024 ** 3, None)] == ["512 B", "200.0 MiB", "1.5 GiB", "-"]
    assert (signed_size(512 * 1024 ** 2), signed_size(-2048), signed_size(0)) == ("+512.0 MiB", "-2.0 KiB", "+0 B")


def test_pages_older_than_keep_days_go_with_their_summary_and_latest_stays(tmp_path: Path):
    for day in ("2026-11-01", "2026-11-30", "2026-12-06"):
        (tmp_path / f"daily-{day}.html").write_text("page")
        (tmp_path / f"daily-{day}.txt").write_text("summary")
    (tmp_path / "latest.html").write_text("page")
    now = datetime(2026, 12, 7, 6, tzinfo=timezone.utc).timestamp()
    removed = prune_pages(tmp_path, keep_days=30, now=now)
    assert sorted(p.name for p in removed) == ["daily-2026-11-01.html", "daily-2026-11-01.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "daily-2026-11-30.html", "daily-2026-11-30.txt", "daily-2026-12-06.html", "daily-2026-12-06.txt",
        "latest.html"]
