"""The connection check's arithmetic: percentiles, the retry policy's waits
and deadline, and the hints that name a failure's usual cause."""

from __future__ import annotations

import random

import pytest

from pgharbor.link.check import CheckSettings, hint, percentiles
from pgharbor.link.retry import GaveUp, RetryPolicy, with_retry


def test_percentiles_interpolate_between_ranks():
    got = percentiles([float(v) for v in range(1, 101)])  # 1..100
    assert got == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "min": 1.0, "max": 100.0, "count": 100}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "min": 7.0, "max": 7.0, "count": 1}
    assert percentiles([3.0, 1.0])["p50"] == 2.0


def test_waits_grow_to_the_cap_with_full_jitter():
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=4, deadline_seconds=60)
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        waits = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8 and min(waits) < ceiling * 0.2  # spread over the whole range


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_retry_returns_once_an_attempt_succeeds():
    clock = FakeClock()
    outcomes = iter([ConnectionError("down"), ConnectionError("down"), "connected"])

    def attempt():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    value, retried = with_retry(attempt, RetryPolicy(), (ConnectionError,), sleep=clock.sleep, clock=clock,
                                rng=random.Random(2))
    assert value == "connected" and retried.attempts == 3 and retried.seconds == clock.now > 0


def test_retry_gives_up_before_waiting_past_the_deadline():
    clock = FakeClock()

    def attempt():
        clock.now += 0.1  # each attempt takes time too
        raise ConnectionError("still down")

    with pytest.raises(GaveUp) as gave_up:
        with_retry(attempt, RetryPolicy(base_seconds=1, cap_seconds=2, deadline_seconds=10), (ConnectionError,),
                   sleep=clock.sleep, clock=clock, rng=random.Random(3))
    assert clock.now <= 10 and gave_up.value.attempts >= 5
    assert "still down" in str(gave_up.value)


def test_other_errors_are_not_retried():
    calls = []

    def attempt():
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        with_retry(attempt, RetryPolicy(), (ConnectionError,), sleep=lambda s: None)
    assert len(calls) == 1


@pytest.mark.parametrize("bad, named", [
    ({"base_seconds": 0}, "base_seconds"), ({"base_seconds": 5, "cap_seconds": 1}, "cap_seconds"),
    ({"deadline_seconds": 0}, "deadline_seconds")])
def test_a_bad_policy_names_the_setting(bad, named):
    with pytest.raises(ValueError, match=named):
        RetryPolicy(**bad)


@pytest.mark.parametrize("bad, named", [({"attempts": 0}, "attempts"), ({"queries": 0}, "queries"),
                                        ({"throughput_mb": -1}, "throughput_mb")])
def test_bad_check_settings_name_the_setting(bad, named):
    with pytest.raises(ValueError, match=named):
        CheckSettings(**bad)


def test_hints_name_the_usual_cause():
    assert "db_client_networks" in hint('connection to server at "10.0.0.5", port 5432 failed: timeout expired')
    assert "vault" in hint('FATAL:  password authentication failed for user "app_rw"')
    assert "TROUBLESHOOTING" in hint("something nobody has seen")


def test_each_explained_libpq_message_has_a_failure_cause_for_the_gauges():
    from pgharbor.link.check import HINTS
    from pgharbor.link.gauges import failure_cause

    assert len({cause for _, cause, _ in HINTS}) == len(HINTS)
    assert [failure_cause(f"cannot connect: ... {needle} ...") for needle, _, _ in HINTS] == \
        [cause for _, cause, _ in HINTS]
    assert failure_cause("cannot connect: connection to server at 10.0.0.1 failed: timeout expired; no answer") \
        == "timeout"
    assert failure_cause("cannot connect: something new") == "other"


def test_the_link_gauges_carry_the_figures_their_limits_and_the_cause():
    from pgharbor.link.check import ConnReport, Thresholds
    from pgharbor.link.gauges import link_gauges

    limits = Thresholds(connect_p95_ms=250, query_p95_ms=20, min_cert_days=30)
    sound = ConnReport(target="app_rw@db1:5432/buffer", reachable=True,
                       connect_ms={"p50": 12.5, "p95": 20.0}, query_ms={"p50": 0.4, "p95": 1.5},
                       tls={"in_use": True, "sslmode": "verify-full", "protocol": "TLSv1.3",
                            "cipher": "TLS_AES_256_GCM_SHA384", "certificate": {"verify_full": True, "days_left": 88}},
                       authentication={"method": "password", "user": "app_rw"})
    lines = link_gauges("buffer", sound, limits)
    assert 'pgharbor_link_up{service="buffer"} 1' in lines
    assert 'pgharbor_link_query_seconds{service="buffer",quantile="0.95"} 0.0015' in lines
    assert 'pgharbor_link_connect_p95_limit_seconds{service="buffer"} 0.25' in lines
    assert 'pgharbor_link_certificate_days_left{service="buffer"} 88' in lines
    assert 'pgharbor_link_certificate_min_days{service="buffer"} 30' in lines
    assert not [line for line in lines if line.startswith("pgharbor_link_failure")]

    cut = ConnReport(target="db1:5432", problems=["cannot connect: connection to server at 10.0.0.1 failed: "
                                                  "Connection refused; nothing listens there"])
    lines = link_gauges("buffer", cut, Thresholds())
    assert 'pgharbor_link_up{service="buffer"} 0' in lines
    assert 'pgharbor_link_failure{service="buffer",cause="refused"} 1' in lines
    # no figure that was not measured, and no limit that was not set
    assert not [line for line in lines if "_seconds" in line or "_limit_" in line]
