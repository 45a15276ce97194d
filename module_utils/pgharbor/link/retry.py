"""How a client gets its database back after the server went away (a
restart, a failover, a network cut): reconnect with exponential backoff and
full jitter, until a deadline.

Full jitter (a random wait between 0 and the growing cap) keeps a fleet of
clients from reconnecting in step and hammering a server that is starting
up. The application should use the same policy; docs/CONNECTIONS.md has a
copy of connect_with_retry for it, and pg_conn_check measures a restart
with this one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..common.settings import ConfigError
from ..errors import PgharborError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    deadline_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base_seconds <= self.cap_seconds:
            raise ConfigError(f"retry policy: base_seconds ({self.base_seconds}) must be above 0 and at most "
                             f"cap_seconds ({self.cap_seconds})")
        if self.deadline_seconds <= 0:
            raise ConfigError(f"retry policy: deadline_seconds ({self.deadline_seconds}) must be above 0")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number `attempt` (1 for the first)."""
        return rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Retried:
    attempts: int
    seconds: float


class GaveUp(PgharborError):
    def __init__(self, attempts: int, seconds: float, last: BaseException):
        super().__init__(f"gave up after {attempts} attempts in {seconds:.1f} s: {last}")
        self.attempts, self.seconds, self.last = attempts, seconds, last


def with_retry(attempt: Callable[[], T], policy: RetryPolicy, retry_on: tuple[type[BaseException], ...], *,
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
               rng: random.Random | None = None) -> tuple[T, Retried]:
    """attempt() until it returns, waiting policy.delay() between failures;
    raises GaveUp once the next wait would end past the deadline."""
    rng = rng or random.Random()
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(), Retried(attempts, clock() - started)
        except retry_on as exc:
            wait = policy.delay(attempts, rng)
            if clock() + wait - started > policy.deadline_seconds:
                raise GaveUp(attempts, clock() - started, exc) from exc
            sleep(wait)
