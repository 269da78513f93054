"""The bound on audit lines for refused TLS handshakes: per address and in all per window,
the rest counted in summary lines when the window ends (a real audit file, a test clock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qkdnet.live.audit import AuditLog
from qkdnet.live.handshake_audit import (
    LINES_PER_ADDRESS,
    LINES_PER_WINDOW,
    OTHERS,
    SUMMARY_ADDRESSES,
    WINDOW_S,
    HandshakeRefusals,
)


class Clock:
    """A clock the test moves (s)."""

    t = 1000.0

    def __call__(self) -> float:
        return self.t


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_address_gets_a_few_lines_and_a_summary_at_the_window_end(tmp_path: Path) -> None:
    """100 refusals from one address: LINES_PER_ADDRESS lines, then one 'more' line with
    the rest when the next window starts; the new window writes again."""
    clock = Clock()
    refusals = HandshakeRefusals(AuditLog(tmp_path / "audit.log"), clock)
    for port in range(100):
        refusals.refused("a", ("10.0.0.9", port), "certificate has expired", None)
    assert len(_lines(tmp_path / "audit.log")) == LINES_PER_ADDRESS
    clock.t += WINDOW_S
    refusals.refused("a", ("10.0.0.9", 7), "PEER_DID_NOT_RETURN_A_CERTIFICATE", None)
    lines = _lines(tmp_path / "audit.log")
    assert len(lines) == LINES_PER_ADDRESS + 2
    summary, fresh = lines[-2:]
    assert summary["from"] == "10.0.0.9" and summary["more"] == 100 - LINES_PER_ADDRESS
    assert fresh["from"] == "10.0.0.9:7" and fresh["kme"] == "a"
    assert all(line["event"] == "tls-handshake-refused" for line in lines)


def test_a_flood_from_many_addresses_adds_a_bounded_number_of_lines(tmp_path: Path) -> None:
    """10,000 refusals from 5,000 addresses in one window: at most LINES_PER_WINDOW lines,
    then SUMMARY_ADDRESSES summaries and one for the other addresses; nothing uncounted."""
    clock = Clock()
    refusals = HandshakeRefusals(AuditLog(tmp_path / "audit.log"), clock)
    for i in range(10_000):
        refusals.refused("b", (f"10.1.{i % 5000 // 250}.{i % 250}", 443), "x", None)
    refusals.flush()
    lines = _lines(tmp_path / "audit.log")
    singles = [a for a in lines if "more" not in a]
    summaries = [a for a in lines if "more" in a]
    assert len(singles) == LINES_PER_WINDOW
    assert len(summaries) == SUMMARY_ADDRESSES + 1
    assert summaries[-1]["from"] == OTHERS
    assert len(singles) + sum(a["more"] for a in summaries) == 10_000
