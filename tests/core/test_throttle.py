"""``ThrottledWarning``: one line per interval while a dependency stays down, with the count held back."""

from __future__ import annotations

import logging

import pytest
from fulcrum_core.observability.throttle import ThrottledWarning


def test_one_line_per_interval_then_the_count_held_back(caplog: pytest.LogCaptureFixture) -> None:
    """The first occurrence is logged at once; repeats within the interval are counted and reported
    with the next line after it."""
    now = [100.0]
    logger = logging.getLogger("test.throttle")
    warn = ThrottledWarning(logger, "store slow", every_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert warn("first")
        assert not warn("second")
        now[0] += 9.9
        assert not warn()
        now[0] += 0.1
        assert warn("again")
    assert [r.getMessage() for r in caplog.records] == [
        "store slow: first",
        "store slow: again (2 more since the last report)",
    ]
