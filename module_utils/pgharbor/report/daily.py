"""A day of the monitored world, from Prometheus: the link's latency, the
recovery point of every tier of both backup layers, what each tier holds,
the restore drills and their restore times, and the alerts that fired and
resolved. Every figure is read from the series pgharbor's gauges and the
exporters write (docs/MONITORING.md lists them); nothing is measured here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .figures import clock, duration, moment, number, signed_size, size
from .promapi import PrometheusAPI, Series

DAY = 86400.0


@dataclass
class Plot:
    """Lines over the report's day, all in one unit (seconds or bytes)."""
    unit: str
    lines: list[tuple[str, Series]]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    key: str
    title: str
    # The plain-text summary's lines; the HTML page shows them too.
    summary: list[str]
    table: Table
    plot: Plot | None = None


@dataclass
class AlertSpan:
    name: str
    instance: str
    severity: str
    fired: float
    resolved: float | None

    def as_row(self, end: float) -> list[str]:
        lasted = (self.resolved or end) - self.fired
        return [self.name, self.instance, self.severity, moment(self.fired),
                moment(self.resolved) if self.resolved else "still firing", duration(lasted)]


@dataclass
class DailyReport:
    start: float
    end: float
    sections: list[Section] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"pgharbor daily report, {moment(self.start)} to {moment(self.end)}"


def where(series: Series) -> str:
    """Whose series it is: the host label pgharbor's gauges carry, else the scraped instance."""
    return series.labels.get("host") or series.labels.get("instance", "?")


def daily_report(api: PrometheusAPI, end: float, *, hours: float = 24, step: float = 300,
                 alert_step: float = 60) -> DailyReport:
    start = end - hours * 3600
    report = DailyReport(start, end)
    report.sections = [link_section(api, start, end, step), rpo_section(api, start, end, step),
                       holdings_section(api, start, end, step), drills_section(api, end),
                       alerts_section(api, start, end, alert_step)]
    return report


def link_section(api: PrometheusAPI, start: float, end: float, step: float) -> Section:
    connect = _by_key(api.range('pgharbor_link_connect_seconds{quantile="0.95"}', start, end, step))
    query = _by_key(api.range('pgharbor_link_query_seconds{quantile="0.95"}', start, end, step))
    up = _by_key(api.range("pgharbor_link_up", start, end, step))
    rows, summary, lines = [], [], []
    for key in sorted(set(connect) | set(query) | set(up)):
        name = f"{key[0]} {key[1]}"
        c, q, u = connect.get(key), query.get(key), up.get(key)
        up_share = sum(v for _, v in u.points) / len(u.points) if u and u.points else None
        cells = [name, _peak(c), _peak(q), duration(c.last if c else None),
                 "-" if up_share is None else f"{up_share:.1%}"]
        rows.append(cells)
        summary.append(f"link {name}: connect p95 peak {cells[1]}, query p95 peak {cells[2]}, "
                       f"connected {cells[4]} of the day")
        lines += [(f"connect p95 {name}", c)] if c else []
        lines += [(f"query p95 {name}", q)] if q else []
    return Section("link", "The application's link", summary or ["link: no measurement in the day"],
                   Table(["host and service", "connect p95, peak", "query p95, peak", "connect p95, now",
                          "connected"], rows),
                   Plot("seconds", lines))


def rpo_section(api: PrometheusAPI, start: float, end: float, step: float) -> Section:
    layers = (("logical", "pgharbor_backup_newest_age_seconds"), ("time travel", "pgharbor_timetravel_rpo_seconds"))
    rows, summary, lines = [], [], []
    for layer, metric in layers:
        for series in sorted(api.range(metric, start, end, step), key=_tier_order):
            name = f"{layer} {series.labels.get('tier', '?')} {where(series)}"
            worst = series.peak
            rows.append([layer, where(series), series.labels.get("tier", "?"),
                         duration(worst[1] if worst else None), duration(series.last)])
            summary.append(f"RPO {name}: worst {duration(worst[1] if worst else None)}, "
                           f"now {duration(series.last)}")
            lines.append((name, series))
    return Section("rpo", "Recovery point per tier over the day", summary or ["RPO: no tier reported in the day"],
                   Table(["layer", "host", "tier", "worst", "now"], rows), Plot("seconds", lines))


def holdings_section(api: PrometheusAPI, start: float, end: float, step: float) -> Section:
    layers = (("logical", "pgharbor_backup_count", "pgharbor_backup_bytes"),
              ("time travel", "pgharbor_timetravel_backups", "pgharbor_timetravel_bytes"))
    rows, summary, lines = [], [], []
    for layer, count_metric, bytes_metric in layers:
        counts = _by_tier(api.instant(count_metric, end))
        sizes = _by_tier(api.range(bytes_metric, start, end, step))
        for key in sorted(set(counts) | set(sizes), key=lambda k: (k[1], k[0])):
            held = sizes.get(key)
            grown = held.points[-1][1] - held.points[0][1] if held and held.points else None
            cells = [layer, key[0], key[1], number(counts[key].last if key in counts else None),
                     size(held.last if held else None), "-" if grown is None else signed_size(grown)]
            rows.append(cells)
            summary.append(f"{layer} {key[1]} {key[0]}: {cells[3]} backups, {cells[4]} ({cells[5]} in the day)")
            if held:
                lines.append((f"{layer} {key[1]} {key[0]}", held))
    return Section("tiers", "What each tier holds", summary or ["tiers: no tier reported"],
                   Table(["layer", "host", "tier", "backups", "size", "change in the day"], rows),
                   Plot("bytes", lines))


def drills_section(api: PrometheusAPI, end: float) -> Section:
    """The newest restore of each tier: logical verifications (a restore drill that passed) and
    time travel's drills (which report their result)."""
    rows, summary = [], []
    verified = _by_tier(api.instant("pgharbor_backup_verified_timestamp_seconds", end))
    restored = _by_tier(api.instant("pgharbor_backup_verified_restore_seconds", end))
    for key in sorted(verified, key=lambda k: (k[1], k[0])):
        rows.append(["logical", key[0], key[1], moment(verified[key].last), "passed",
                     duration(restored[key].last if key in restored else None)])
    drilled = _by_tier(api.instant("pgharbor_timetravel_drill_timestamp_seconds", end))
    ok = _by_tier(api.instant("pgharbor_timetravel_drill_ok", end))
    rto = _by_tier(api.instant("pgharbor_timetravel_drill_rto_seconds", end))
    for key in sorted(drilled, key=lambda k: (k[1], k[0])):
        result = {1.0: "passed", 0.0: "FAILED"}.get(ok[key].last if key in ok else -1, "-")
        rows.append(["time travel", key[0], key[1], moment(drilled[key].last), result,
                     duration(rto[key].last if key in rto else None)])
    for layer, host, tier, when, result, restore in rows:
        summary.append(f"drill {layer} {tier} {host}: {result} {when}, restored in {restore}")
    return Section("drills", "Restore drills and their restore time (RTO)", summary or ["drills: none recorded"],
                   Table(["layer", "host", "tier", "last drill", "result", "restore time"], rows))


def alerts_section(api: PrometheusAPI, start: float, end: float, step: float) -> Section:
    spans = alert_spans(api.range('ALERTS{alertstate="firing"}', start, end, step), end, step)
    firing = [span for span in spans if span.resolved is None]
    summary = [f"alerts: {len(spans)} fired, {len(spans) - len(firing)} resolved, {len(firing)} still firing"]
    summary += [f"  {span.name} {span.instance} ({span.severity}) fired {clock(span.fired)}, "
                + (f"resolved {clock(span.resolved)}" if span.resolved else "still firing") for span in spans]
    return Section("alerts", "Alerts fired and resolved", summary,
                   Table(["alert", "instance", "severity", "fired", "resolved", "lasted"],
                         [span.as_row(end) for span in spans]))


def alert_spans(series: list[Series], end: float, step: float) -> list[AlertSpan]:
    """ALERTS{alertstate="firing"} has a point at every step while an alert fires: each run of points is
    one firing, resolved one step after its last point unless that point is the day's end."""
    spans = []
    for one in series:
        run: list[float] = []
        for t, _ in one.points + [(float("inf"), 0.0)]:
            if run and t - run[-1] > step * 1.5:
                resolved = run[-1] + step if end - run[-1] > step * 1.5 else None
                spans.append(AlertSpan(one.labels.get("alertname", "?"), one.labels.get("instance", "-"),
                                       one.labels.get("severity", "-"), run[0], resolved))
                run = []
            run.append(t)
    return sorted(spans, key=lambda span: (span.fired, span.name))


def _peak(series: Series | None) -> str:
    peak = series.peak if series else None
    return f"{duration(peak[1])} at {clock(peak[0])}" if peak else "-"


def _by_key(series: list[Series]) -> dict[tuple[str, str], Series]:
    return {(where(one), one.labels.get("service", "")): one for one in series}


def _by_tier(series: list[Series]) -> dict[tuple[str, str], Series]:
    return {(where(one), one.labels.get("tier", "?")): one for one in series}


def _tier_order(one: Series) -> tuple[str, str]:
    return one.labels.get("tier", ""), where(one)
