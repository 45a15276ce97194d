"""The daily report as a person reads it: one self-contained HTML page
(no script, no external file, plots as inline SVG) and the plain-text
summary that is sent."""

from __future__ import annotations

from html import escape

from .daily import DailyReport, Plot, Section
from .figures import clock, duration, size

# Colours a reader tells apart, also in grey print: cycled over a plot's lines.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#7f7f7f")
WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM = 720, 200, 70, 30, 24

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 60em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.failed, li.failed { color: #b00; font-weight: bold; }
svg text { font-size: 11px; fill: #444; }
ul.legend { list-style: none; padding: 0; } ul.legend li { display: inline-block; margin-right: 1.2em; }
"""


def text(report: DailyReport) -> str:
    lines = [report.title, ""]
    for section in report.sections:
        lines += [section.title + ":"] + [f"  {line}" for line in section.summary] + [""]
    return "\n".join(lines)


def html(report: DailyReport) -> str:
    body = [f"<h1>{escape(report.title)}</h1>"]
    for section in report.sections:
        body.append(_section(section, report))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(report.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _section(section: Section, report: DailyReport) -> str:
    parts = [f'<section id="{section.key}"><h2>{escape(section.title)}</h2>']
    if section.plot and section.plot.lines:
        parts.append(plot_svg(section.plot, report.start, report.end))
    if section.table.rows:
        head = "".join(f"<th>{escape(column)}</th>" for column in section.table.columns)
        rows = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in section.table.rows)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    else:
        parts.append(f"<p>{escape(section.summary[0])}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _cell(cell: str) -> str:
    return f'<td class="failed">{escape(cell)}</td>' if cell == "FAILED" else f"<td>{escape(cell)}</td>"


def plot_svg(plot: Plot, start: float, end: float) -> str:
    """Lines over the day: time on x (a tick every 6 hours), the unit on y from 0 to the highest value."""
    top = max((value for _, series in plot.lines for _, value in series.points), default=0.0) or 1.0
    label = duration if plot.unit == "seconds" else size
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - 10

    def x(t: float) -> float:
        return LEFT + (t - start) / (end - start) * span_x

    def y(value: float) -> float:
        return 10 + span_y - value / top * span_y

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">']
    for fraction in (0, 0.5, 1):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(top * fraction):.1f}" '
                     f'y2="{y(top * fraction):.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y(top * fraction) + 4:.1f}" text-anchor="end">'
                     f"{escape(label(top * fraction))}</text>")
    tick = start
    while tick <= end:
        parts.append(f'<text x="{x(tick):.1f}" y="{HEIGHT - 6}" text-anchor="middle">{clock(tick)}</text>')
        tick += 6 * 3600
    legend = []
    for index, (name, series) in enumerate(plot.lines):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series.points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}">'
                     f"<title>{escape(name)}</title></polyline>")
        legend.append(f'<li><span style="color:{colour}">&#9632;</span> {escape(name)}</li>')
    parts.append("</svg>")
    return "\n".join(parts) + f'\n<ul class="legend">{"".join(legend)}</ul>'
