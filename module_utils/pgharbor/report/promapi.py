"""Prometheus's HTTP query API (/api/v1/query, /api/v1/query_range), read
with the standard library: the report runs on the monitoring host beside
Prometheus and needs nothing else installed."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from ..errors import PgharborError


class PrometheusError(PgharborError):
    pass


@dataclass(frozen=True)
class Series:
    """One series: its labels (without __name__) and its points (unix time, value); values Prometheus
    reports as NaN or infinite are left out."""
    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def peak(self) -> tuple[float, float] | None:
        """(time, value) of the highest point."""
        return max(self.points, key=lambda point: point[1]) if self.points else None


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def instant(self, expr: str, at: float) -> list[Series]:
        """The expression's value at one moment, per series."""
        return self._series(self._get("query", query=expr, time=f"{at:.3f}"))

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """The expression from start to end, a point every step seconds, per series."""
        return self._series(self._get("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                                      step=f"{step:g}"))

    def _get(self, endpoint: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 (an operator's URL)
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            # Prometheus explains a bad query in the body of its 400 and 422 answers.
            detail = exc.read().decode(errors="replace")[:300]
            raise PrometheusError(f"Prometheus at {self.url} refused {params.get('query')!r}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer ({exc}): is it running, and is "
                                  "prometheus_url in the report's settings its address?") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url}: {body.get('error', body)}")
        return body["data"]

    @staticmethod
    def _series(data: dict) -> list[Series]:
        kind, results = data["resultType"], data["result"]
        if kind not in ("vector", "matrix"):
            raise PrometheusError(f"expected a vector or a matrix, Prometheus answered a {kind}")
        found = []
        for result in results:
            labels = {name: value for name, value in result["metric"].items() if name != "__name__"}
            raw = result["values"] if kind == "matrix" else [result["value"]]
            points = [(float(t), float(v)) for t, v in raw if math.isfinite(float(v))]
            found.append(Series(labels, points))
        return found
