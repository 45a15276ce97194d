"""Prometheus's text exposition format, as node_exporter's textfile
collector reads it: gauges with their HELP and TYPE, label values escaped.
Every writer of pgharbor's gauges (backups, time travel, the link) uses it."""

from __future__ import annotations


def label(value: str) -> str:
    """A label value, escaped for the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    """host="db1",tier="tier1": the labels of one sample, in the order given."""
    return ",".join(f'{name}="{label(str(value))}"' for name, value in pairs.items())


def gauge(out: list[str], name: str, text: str, samples: list[tuple[str, object]]) -> None:
    """One gauge's HELP, TYPE and samples (labels already rendered) appended to out; nothing when it has
    no sample (a value of None is no sample)."""
    _metric(out, "gauge", name, text, samples)


def counter(out: list[str], name: str, text: str, samples: list[tuple[str, object]]) -> None:
    """The same for a counter (a value that only grows, or starts again at 0)."""
    _metric(out, "counter", name, text, samples)


def _metric(out: list[str], kind: str, name: str, text: str, samples: list[tuple[str, object]]) -> None:
    samples = [(rendered, value) for rendered, value in samples if value is not None]
    if samples:
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        out += [f"{name}{{{rendered}}} {value}" for rendered, value in samples]


def exposition(lines: list[str]) -> str:
    """Lines of gauges as one file. A metric written by several calls (one per host, say) gets one
    HELP and one TYPE and its samples together, as the text format requires: node_exporter refuses
    the whole file on a second HELP line for a name."""
    heads: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("# "):
            kind, name = line.split()[1:3]
            head = heads.setdefault(name, [])
            if not any(h.split()[1] == kind for h in head):
                head.append(line)
        else:
            name = line.split("{", 1)[0].split(" ", 1)[0]
            heads.setdefault(name, [])
            samples.setdefault(name, []).append(line)
    return "\n".join(line for name, head in heads.items() for line in head + samples.get(name, [])) + "\n"
