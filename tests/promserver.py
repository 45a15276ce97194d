"""A real Prometheus (Debian's 2.42, unpacked by the Makefile beside
promtool) on loopback, holding a day of history the test writes: the
series are backfilled with `promtool tsdb create-blocks-from openmetrics`
into the data directory before Prometheus starts, so its query API answers
from blocks exactly as it would after a day of scraping."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pgserver import free_port

BIN = Path(__file__).resolve().parent.parent / ".cache/prometheus/usr/bin"
# A sample: (metric name, labels, unix time, value).
Sample = tuple[str, dict[str, str], float, float]


@dataclass
class PromServer:
    process: subprocess.Popen
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        shutil.rmtree(self.workdir, ignore_errors=True)


def openmetrics(samples: Iterable[Sample]) -> str:
    """The samples as an OpenMetrics text file: every metric's samples together, in time order."""
    by_metric: dict[str, list[Sample]] = {}
    for sample in samples:
        by_metric.setdefault(sample[0], []).append(sample)
    lines = []
    for name, group in by_metric.items():
        lines.append(f"# TYPE {name} gauge")
        for _, labels, t, value in sorted(group, key=lambda s: (sorted(s[1].items()), s[2])):
            rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{rendered}}} {value} {t:.3f}")
    return "\n".join(lines) + "\n# EOF\n"


def start_prometheus(samples: Iterable[Sample]) -> PromServer:
    workdir = Path(tempfile.mkdtemp(prefix="pgharbor-prometheus-"))
    data = workdir / "data"
    (workdir / "history.om").write_text(openmetrics(samples))
    subprocess.run([str(BIN / "promtool"), "tsdb", "create-blocks-from", "openmetrics",
                    str(workdir / "history.om"), str(data)], check=True, capture_output=True, text=True)
    (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    process = subprocess.Popen([str(BIN / "prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                                f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
                                "--storage.tsdb.retention.time=30d"],
                               stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("w"))
    server = PromServer(process, port, workdir)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.process.kill()
            raise RuntimeError("Prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:])
        time.sleep(0.3)
