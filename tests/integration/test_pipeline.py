"""The process pipeline with real processes: every stage's status counts,
the stage at fault is named, a failing sink stops everything."""

from __future__ import annotations

import pytest

from pgharbor.common.pipeline import Pipeline, PipelineError, Stage


def test_output_reaches_the_sink():
    out = bytearray()
    Pipeline([Stage("seq", ["seq", "1", "100000"]), Stage("gzip", ["gzip", "-c"]),
              Stage("gunzip", ["gunzip", "-c"])]).run(sink=out.extend)
    assert out.decode().split() == [str(i) for i in range(1, 100001)]


def test_a_failure_in_the_middle_is_named():
    """A shell would report only the last stage (cat, successful)."""
    with pytest.raises(PipelineError, match=r"middle failed \(exit 3\): broken here"):
        Pipeline([Stage("seq", ["seq", "1", "1000000"]),
                  Stage("middle", ["sh", "-c", "head -c 100 >/dev/null; echo broken here >&2; exit 3"]),
                  Stage("cat", ["cat"])]).run(sink=lambda chunk: None)


def test_the_writer_killed_by_sigpipe_is_not_blamed():
    with pytest.raises(PipelineError, match="reader failed"):
        Pipeline([Stage("yes", ["yes"]), Stage("reader", ["sh", "-c", "head -c 10 >/dev/null; exit 1"])]).run(
            sink=lambda chunk: None)


def test_a_failing_sink_stops_every_stage():
    class Full(Exception):
        pass

    def sink(chunk: bytes) -> None:
        raise Full("disk full")

    pipeline = Pipeline([Stage("yes", ["yes"]), Stage("cat", ["cat"])])
    with pytest.raises(Full):
        pipeline.run(sink=sink)
    assert all(proc.poll() is not None for proc in pipeline._procs)
