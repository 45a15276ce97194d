"""pgharbor-report: the monitoring host's daily report.

    daily    the last day from Prometheus: an HTML page and a plain-text
             summary in the output directory, the summary sent to the
             report's receiver (the timer runs this once a day)

The page is daily-<date>.html (latest.html is the newest), the summary
beside it as daily-<date>.txt; pages older than keep_days are removed."""

from __future__ import annotations

import argparse
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..common.atomicfile import replace_file
from ..common.settings import REPORT_CONFIG
from ..report.daily import daily_report
from ..report.deliver import Receiver, Smtp, send
from ..report.promapi import PrometheusAPI
from ..report.render import html, text
from .command import run_command

PAGES = "daily-*.html"


def cmd_daily(config: dict, args: argparse.Namespace) -> int:
    end = datetime.fromisoformat(args.end).timestamp() if args.end else datetime.now(timezone.utc).timestamp()
    report = daily_report(PrometheusAPI(config["prometheus_url"]), end, hours=float(config.get("hours", 24)))
    out = Path(config["output_dir"])
    stem = "daily-" + datetime.fromtimestamp(end, timezone.utc).strftime("%Y-%m-%d")
    page, summary = html(report), text(report)
    # Readable by the operators' group the directory belongs to; a browser opens the file as it is.
    replace_file(out / f"{stem}.html", page, mode=0o644, durable=False)
    replace_file(out / f"{stem}.txt", summary, mode=0o644, durable=False)
    shutil.copyfile(out / f"{stem}.html", out / "latest.html.partial")
    os.replace(out / "latest.html.partial", out / "latest.html")
    prune_pages(out, int(config.get("keep_days", 30)), end)
    print(summary)
    if not args.no_send:
        sent = send(Receiver(**config["receiver"]), smtp_from(config.get("smtp")), report.title, summary, page,
                    f"{stem}.html")
        print(f"sent to {', '.join(sent) or 'nobody (the receiver has no address)'}")
    return 0


def smtp_from(settings: dict | None) -> Smtp | None:
    if not settings:
        return None
    return Smtp(smarthost=settings["smarthost"], sender=settings["from"],
                auth_username=settings.get("auth_username", ""), auth_password=settings.get("auth_password", ""),
                require_tls=settings.get("require_tls", True))


def prune_pages(out: Path, keep_days: int, now: float) -> list[Path]:
    """Remove the pages and summaries of days older than keep_days; latest.html stays."""
    removed = []
    for page in out.glob(PAGES):
        day = datetime.strptime(page.stem.removeprefix("daily-"), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        if now - day.timestamp() > (keep_days + 1) * 86400:
            for path in (page, page.with_suffix(".txt")):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


COMMANDS = {"daily": cmd_daily}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-report", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("PGHARBOR_REPORT_CONFIG", REPORT_CONFIG))
    sub = p.add_subparsers(dest="command", required=True)
    daily = sub.add_parser("daily", help="the last day's report, written and sent")
    daily.add_argument("--end", help="the report's end, ISO 8601 with its time zone; default now")
    daily.add_argument("--no-send", action="store_true", help="write the report, send nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), argv, COMMANDS, ("prometheus_url", "monitoring_server_prometheus_port"))
