"""`make soak` in miniature: a dozen users for 20 seconds, one restart, nothing lost or doubled."""

import time

import pytest

from bench.soak import Ledger, SoakPlan, soak

TINY = SoakPlan(minutes=20 / 60, users=12, rooms=2, senders=4, gap=(1.0, 3.0), restart_every=20)


def test_a_short_soak_with_one_restart_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert TINY.restarts_at() == [10.0]

    result = soak(TINY)

    assert (result.loss, result.stored_twice, result.ledger.shown_twice, result.not_back) == (0, 0, 0, 0)
    printed = capsys.readouterr().out
    for row in ("| restarts | 1 of process 1", "| loss | 0 ", "p95", "RSS process 0"):
        assert row in printed, row


def test_a_message_missing_from_one_user_is_lost_and_a_second_showing_is_a_double() -> None:
    ledger = Ledger(members={"room0": [0, 1]}, seen={0: set(), 1: set()})
    ledger.sending("soak-0-0~", "room0")
    ledger.acked.add("soak-0-0~")
    shown: dict[str, str] = {}
    ledger.saw(0, shown, "<p>soak-0-0~</p>", time.perf_counter())
    ledger.saw(0, shown, "<p>soak-0-0~</p>", time.perf_counter())
    assert (ledger.lost(), ledger.twice, len(ledger.latencies)) == (1, {"live then live": 1}, 1)

    ledger.saw(1, {}, '<div id="messages">soak-0-0~</div>', time.perf_counter())
    assert (ledger.lost(), ledger.from_history) == (0, 1)
