"""The monitoring host's daily report against a real Prometheus holding a
day the test wrote (a latency peak, a late tier, a failed drill, alerts
that fired and resolved), read in a real headless browser (Debian's
Chromium): the page renders, and shows the figures of that day. The
summary reaches a webhook; a Prometheus that does not answer and a
receiver that refuses are errors that name the setting to fix."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import threading
import time
from datetime import datetime, timezone
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from pgserver import free_port
from promserver import Sample, start_prometheus

from pgharbor.cli import pgharbor_report
from pgharbor.report.figures import clock, moment

HOUR = 3600
# The day ends on a whole minute, a little in the past; samples every 30 s.
END = (int(time.time()) // 60) * 60 - 120
START = END - 24 * HOUR
PEAK, OUTAGE, LATE, SLOW_WAL = START + 10 * HOUR, START + 15 * HOUR, START + 5 * HOUR, START + 3 * HOUR
GROWN, VERIFIED, DRILLED = START + 12 * HOUR, START + 20 * HOUR, START + 22 * HOUR
SLOW_ALERT = (PEAK + 300, PEAK + 2400)
DRILL_ALERT = DRILLED + 300
GIB = 1024 ** 3


def during(t: float, begin: float, length: float) -> bool:
    return begin <= t < begin + length


def the_day() -> list[Sample]:
    link = {"instance": "legacy", "job": "node", "service": "buffer"}
    db1 = {"instance": "db1", "job": "node", "host": "db1"}
    samples: list[Sample] = []
    for t in range(START - 600, END + 1, 30):
        samples += [
            ("pgharbor_link_connect_seconds", {**link, "quantile": "0.95"}, t,
             0.25 if during(t, PEAK, 40 * 60) else 0.012),
            ("pgharbor_link_query_seconds", {**link, "quantile": "0.95"}, t, 0.0012),
            ("pgharbor_link_up", link, t, 0 if during(t, OUTAGE, 30 * 60) else 1),
            ("pgharbor_backup_newest_age_seconds", {**db1, "tier": "tier1"}, t, 600),
            ("pgharbor_backup_newest_age_seconds", {**db1, "tier": "tier3"}, t,
             18000 if during(t, LATE, HOUR) else 7200),
            ("pgharbor_timetravel_rpo_seconds", {**db1, "tier": "repo1"}, t, 95 if during(t, SLOW_WAL, HOUR) else 30),
            ("pgharbor_backup_count", {**db1, "tier": "tier1"}, t, 24),
            ("pgharbor_backup_count", {**db1, "tier": "tier3"}, t, 30),
            ("pgharbor_backup_bytes", {**db1, "tier": "tier1"}, t, 1.5 * GIB if t >= GROWN else GIB),
            ("pgharbor_timetravel_backups", {**db1, "tier": "repo1"}, t, 3),
            ("pgharbor_timetravel_bytes", {**db1, "tier": "repo1"}, t, 200 * 1024 ** 2),
            ("pgharbor_backup_verified_timestamp_seconds", {**db1, "tier": "tier1"}, t, VERIFIED),
            ("pgharbor_backup_verified_restore_seconds", {**db1, "tier": "tier1"}, t, 42),
            ("pgharbor_timetravel_drill_timestamp_seconds", {**db1, "tier": "repo2"}, t, DRILLED),
            ("pgharbor_timetravel_drill_ok", {**db1, "tier": "repo2"}, t, 1 if t < DRILLED else 0),
            ("pgharbor_timetravel_drill_rto_seconds", {**db1, "tier": "repo2"}, t, 130),
        ]
        alert = {"alertstate": "firing", "job": "node"}
        if SLOW_ALERT[0] <= t < SLOW_ALERT[1]:
            samples.append(("ALERTS", {**alert, "alertname": "LinkSlow", "instance": "legacy",
                                       "severity": "warning"}, t, 1))
        if t >= DRILL_ALERT:
            samples.append(("ALERTS", {**alert, "alertname": "RestoreDrillFailed", "instance": "db1",
                                       "severity": "critical"}, t, 1))
    return samples


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def prometheus():
    server = start_prometheus(the_day())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def webhook():
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/report"
    server.shutdown()


def settings(tmp_path: Path, prometheus_url: str, webhook_url: str) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"prometheus_url": prometheus_url, "output_dir": str(tmp_path), "keep_days": 30,
                                "receiver": {"name": "reports", "webhook": [webhook_url]}}))
    return path


def end_iso() -> str:
    return datetime.fromtimestamp(END, timezone.utc).isoformat()


class Page(HTMLParser):
    """The browser's DOM, read back: per section, its table's rows (cell texts and classes) and its
    plot's lines."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[tuple[str, str]]]] = {}
        self.lines: dict[str, int] = {}
        self.section = ""
        self.cell: list[str] | None = None
        self.cell_class = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id", "")
        elif tag == "tr" and self.section:
            self.rows.setdefault(self.section, []).append([])
        elif tag == "td":
            self.cell, self.cell_class = [], attrs.get("class", "")
        elif tag == "polyline":
            self.lines[self.section] = self.lines.get(self.section, 0) + 1

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[self.section][-1].append(("".join(self.cell).strip(), self.cell_class))
            self.cell = None

    def table(self, section: str) -> list[list[str]]:
        return [[text for text, _ in row] for row in self.rows.get(section, []) if row]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's chromium is missing: run 'make system-deps' (as root)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def rendered(prometheus, webhook, tmp_path_factory):
    """The report for the test's day, written, sent, and read back from Chromium's DOM."""
    out = tmp_path_factory.mktemp("report")
    Hook.received.clear()
    assert pgharbor_report.main(["--config", str(settings(out, prometheus.url, webhook)),
                                 "daily", "--end", end_iso()]) == 0
    page_file = out / f"daily-{moment(END)[:10]}.html"
    assert (out / "latest.html").read_text() == page_file.read_text()
    dom = chromium("--dump-dom", page_file.as_uri(), profile=out / "chromium").stdout
    page = Page()
    page.feed(dom)
    return page, out, page_file


def test_the_page_renders_in_a_browser(rendered):
    _, out, page_file = rendered
    shot = out / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1000,2600", page_file.as_uri(), profile=out / "chromium")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 2600)


def test_the_link_section_shows_the_latency_peak_and_the_outage(rendered):
    page, _, _ = rendered
    (row,) = page.table("link")
    assert row[0] == "legacy buffer"
    assert row[1] == f"250 ms at {clock(PEAK)}"
    assert row[2].startswith("1.2 ms at ")
    assert row[3] == "12 ms"
    # 30 minutes of the day without a connection.
    share = float(row[4].rstrip("%"))
    assert 97.5 <= share <= 98.4, row
    assert page.lines["link"] == 2


def test_the_rpo_section_shows_each_tiers_worst_moment(rendered):
    page, _, _ = rendered
    rows = {(r[0], r[2]): r for r in page.table("rpo")}
    assert rows["logical", "tier1"][3:] == ["10 min", "10 min"]
    assert rows["logical", "tier3"][3:] == ["5.0 h", "2.0 h"]
    assert rows["time travel", "repo1"][3:] == ["1.6 min", "30 s"]
    assert page.lines["rpo"] == 3


def test_the_tiers_section_shows_counts_sizes_and_growth(rendered):
    page, _, _ = rendered
    rows = {(r[0], r[2]): r[3:] for r in page.table("tiers")}
    assert rows["logical", "tier1"] == ["24", "1.5 GiB", "+512.0 MiB"]
    assert rows["logical", "tier3"] == ["30", "-", "-"]
    assert rows["time travel", "repo1"] == ["3", "200.0 MiB", "+0 B"]


def test_the_drills_section_marks_the_failed_drill(rendered):
    page, _, _ = rendered
    rows = {(r[0], r[2]): r[3:] for r in page.table("drills")}
    assert rows["logical", "tier1"] == [moment(VERIFIED), "passed", "42 s"]
    assert rows["time travel", "repo2"] == [moment(DRILLED), "FAILED", "2.2 min"]
    failed = [cell for row in page.rows["drills"] for cell in row if cell[0] == "FAILED"]
    assert failed == [("FAILED", "failed")]


def test_the_alerts_section_shows_fired_resolved_and_still_firing(rendered):
    page, _, _ = rendered
    rows = {r[0]: r for r in page.table("alerts")}
    slow = rows["LinkSlow"]
    assert slow[1:4] == ["legacy", "warning", moment(SLOW_ALERT[0])]
    # Backfilled series end without Prometheus's staleness marker: the query still sees the last point for
    # its lookback (5 minutes), which a live Prometheus ends at once.
    resolved = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d) UTC", slow[4])
    assert resolved, slow
    assert moment(SLOW_ALERT[1]) <= slow[4] <= moment(SLOW_ALERT[1] + 6 * 60), slow
    assert rows["RestoreDrillFailed"][1:5] == ["db1", "critical", moment(DRILL_ALERT), "still firing"]


def test_the_summary_reaches_the_webhook(rendered):
    (document,) = Hook.received
    assert document["kind"] == "pgharbor-daily-report"
    assert f"connect p95 peak 250 ms at {clock(PEAK)}" in document["text"]
    assert "drill time travel repo2 db1: FAILED" in document["text"]
    assert "alerts: 2 fired, 1 resolved, 1 still firing" in document["text"]
    assert document["page"] == f"daily-{moment(END)[:10]}.html"


def test_a_prometheus_that_does_not_answer_is_named(tmp_path, webhook, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    assert pgharbor_report.main(["--config", str(settings(tmp_path, dead, webhook)), "daily"]) == 2
    err = capsys.readouterr().err
    assert f"Prometheus at {dead} did not answer" in err and "prometheus_url" in err
    assert not list(tmp_path.glob("daily-*"))


def test_a_receiver_that_refuses_fails_the_run_after_the_page_is_written(tmp_path, prometheus, capsys):
    refused = f"http://127.0.0.1:{free_port()}/report"
    assert pgharbor_report.main(["--config", str(settings(tmp_path, prometheus.url, refused)),
                                 "daily", "--end", end_iso()]) == 2
    assert f"the report's webhook {refused} did not take the summary" in capsys.readouterr().err
    assert (tmp_path / f"daily-{moment(END)[:10]}.html").exists()


def test_an_email_receiver_gets_the_summary_with_the_page_attached(tmp_path, prometheus):
    """Through a real SMTP server on loopback (Python's own, the one the standard library still has)."""
    import email
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import asyncore
        import smtpd

    got: list[bytes] = []

    class Sink(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            got.append(data)

    port = free_port()
    sink = Sink(("127.0.0.1", port), None, decode_data=False)
    loop = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.1}, daemon=True)
    loop.start()
    try:
        config = tmp_path / "report.json"
        config.write_text(json.dumps({
            "prometheus_url": prometheus.url, "output_dir": str(tmp_path),
            "receiver": {"name": "ops", "email": ["ops@example.com"]},
            "smtp": {"smarthost": f"127.0.0.1:{port}", "from": "reports@example.com", "require_tls": False}}))
        assert pgharbor_report.main(["--config", str(config), "daily", "--end", end_iso()]) == 0
    finally:
        sink.close()
    (raw,) = got
    message = email.message_from_bytes(raw)
    assert message["To"] == "ops@example.com" and message["Subject"].startswith("pgharbor daily report")
    body, page = [part for part in message.walk() if not part.is_multipart()]
    assert f"connect p95 peak 250 ms at {clock(PEAK)}" in body.get_payload(decode=True).decode()
    assert page.get_filename() == f"daily-{moment(END)[:10]}.html"
    assert page.get_payload(decode=True).decode() == (tmp_path / page.get_filename()).read_text()


def test_an_email_receiver_without_a_mail_relay_is_named(tmp_path, prometheus, capsys):
    config = tmp_path / "report.json"
    config.write_text(json.dumps({"prometheus_url": prometheus.url, "output_dir": str(tmp_path),
                                  "receiver": {"name": "ops", "email": ["ops@example.com"]}}))
    assert pgharbor_report.main(["--config", str(config), "daily", "--end", end_iso()]) == 2
    assert "receiver ops has e-mail addresses but monitoring_server_smtp is empty" in capsys.readouterr().err
