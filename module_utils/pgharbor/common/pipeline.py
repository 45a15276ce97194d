"""Processes joined by OS pipes, the way a shell runs `a | b | c`.

Backups and restores are chains of tools (pg_dump | zstd | gpg, and back);
the data moves between them through the kernel. Python only reads the last
stage's output when it has to see it (to hash and store it), and checks
every stage's exit status: a shell pipeline reports only the last one, and a
truncated or corrupted stream usually shows up in a stage in the middle.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ..errors import PgharborError

CHUNK = 1 << 20


class PipelineError(PgharborError, RuntimeError):
    """A stage failed; the message names it and quotes its error output."""

    def __init__(self, stage: str, returncode: int, stderr: str):
        self.stage, self.returncode, self.stderr = stage, returncode, stderr
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
        super().__init__(f"{stage} failed ({how}): {stderr or 'no error output'}")


@dataclass
class Stage:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None


@dataclass
class Finished:
    name: str
    returncode: int
    stderr: str


@dataclass
class Pipeline:
    stages: list[Stage]
    _procs: list[subprocess.Popen] = field(default_factory=list)

    def run(self, sink: Callable[[bytes], None] | None = None) -> None:
        """Run every stage; pass the last stage's output to sink in chunks
        (without a sink it is discarded: a module's stdout is its JSON).
        Raises PipelineError naming the first stage that failed for a reason
        of its own, and re-raises what sink raised after stopping every stage."""
        errs = [tempfile.TemporaryFile() for _ in self.stages]
        try:
            prev: int | IO[bytes] | None = subprocess.DEVNULL
            for i, stage in enumerate(self.stages):
                last = i == len(self.stages) - 1
                out = subprocess.PIPE if sink or not last else subprocess.DEVNULL
                proc = subprocess.Popen(stage.argv, stdin=prev, stdout=out, stderr=errs[i], env=stage.env)
                if i > 0 and self._procs[-1].stdout is not None:
                    # Only the next stage holds the read end now, so that a stage
                    # that dies gives its writer SIGPIPE instead of a hang.
                    self._procs[-1].stdout.close()
                self._procs.append(proc)
                prev = proc.stdout
            if sink is not None:
                self._drain(sink)
            for proc in self._procs:
                proc.wait()
            finished = []
            for stage, proc, err in zip(self.stages, self._procs, errs, strict=True):
                err.seek(0)
                finished.append(Finished(stage.name, proc.returncode, err.read().decode(errors="replace").strip()))
            self._raise_first_failure(finished)
        finally:
            self.kill()
            for err in errs:
                err.close()

    def _drain(self, sink: Callable[[bytes], None]) -> None:
        out = self._procs[-1].stdout
        assert out is not None
        try:
            while chunk := out.read(CHUNK):
                sink(chunk)
        except BaseException:
            self.kill()
            raise
        finally:
            out.close()

    def _raise_first_failure(self, finished: list[Finished]) -> None:
        failed = [f for f in finished if f.returncode != 0]
        # A stage killed by SIGPIPE only lost its reader: blame the reader.
        own = [f for f in failed if f.returncode != -signal.SIGPIPE] or failed
        if own:
            raise PipelineError(own[0].name, own[0].returncode, own[0].stderr[-2000:])

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
