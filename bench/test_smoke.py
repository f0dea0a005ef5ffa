"""`make bench` in miniature, so `make test` notices when the benchmark itself breaks.

Ten sockets, a few messages, both ceilings and Parley: every row gets a figure and nothing is lost.
"""

import asyncio
from pathlib import Path

from bench.__main__ import run, table
from bench.scenarios import Plan

TINY = Plan(
    joins=10,
    idle_sockets=10,
    join_timeout=20,
    fan_sizes=(10,),
    fan_rate=10,
    fan_messages=3,
    posting_seconds=0.5,
    wrk_seconds=0,  # wrk is not among `make test`'s programs
    senders=2,
    rate_senders=1,
)
ROWS = ["joins", "memory", "fan10_p50", "fan10_p99", "posting", "storm"]


def test_a_tiny_run_fills_every_row_and_loses_nothing(tmp_path: Path) -> None:
    servers, results = asyncio.run(run(TINY, ["ceil", "dceil", "p1"], tmp_path, only=set()))

    for server in servers:
        for row in ROWS:
            figure = results[server.key][row]
            assert not figure.failed, (server.key, row, figure.failed)
            assert figure.value is not None
            assert not any(word in figure.note for word in ("lost", "doubled", "out of order", "not stored"))
    assert results["p1"]["joins"].note.startswith("list ✓")
    assert results["p1"]["storm"].note == "history ✓ once each"
    assert results["p1"]["posting"].note.startswith("all ")
    assert "failed" not in table(servers, results, TINY)
