"""Gray release: stable, monotone, and close to the configured share over 10,000 customers."""

from __future__ import annotations

import hashlib

import pytest
from fulcrum_core.branches import bucket, in_rollout

CUSTOMERS = [f"c{n:05d}" for n in range(10_000)]


def test_bucket_is_sha256_of_plugin_and_customer() -> None:
    """The bucket is fixed by the documented formula, so every worker and release agrees on it."""
    digest = hashlib.sha256(b"merchant-promo:c00042").digest()
    assert bucket("c00042", "merchant-promo") == int.from_bytes(digest[:8], "big") % 10_000


def test_same_customer_same_answer_every_time() -> None:
    """Asking again (as every request does) never changes a customer's answer."""
    first = [in_rollout(c, "merchant-promo", 30) for c in CUSTOMERS]
    again = [in_rollout(c, "merchant-promo", 30) for c in CUSTOMERS]
    assert first == again


@pytest.mark.parametrize("percentage", [1, 5, 10, 30, 50, 75, 99])
def test_share_within_two_points(percentage: int) -> None:
    """Over 10,000 synthetic customers the share in rollout is within ±2 points of the percentage."""
    share = 100 * sum(in_rollout(c, "merchant-promo", percentage) for c in CUSTOMERS) / len(CUSTOMERS)
    assert abs(share - percentage) <= 2


def test_raising_the_percentage_only_adds_customers() -> None:
    """Every customer in at p% is still in at any higher percentage (no one is dropped)."""
    previous: set[str] = set()
    for percentage in range(0, 101, 5):
        current = {c for c in CUSTOMERS if in_rollout(c, "merchant-promo", percentage)}
        assert previous <= current
        previous = current
    assert previous == set(CUSTOMERS)


def test_zero_is_nobody_and_hundred_is_everybody() -> None:
    """0 % admits no one and 100 % admits everyone."""
    assert not any(in_rollout(c, "p", 0) for c in CUSTOMERS)
    assert all(in_rollout(c, "p", 100) for c in CUSTOMERS)


def test_out_of_range_percentages_clamp() -> None:
    """A percentage below 0 or above 100 behaves as 0 or 100 rather than raising on the hot path."""
    assert not in_rollout("c1", "p", -5)
    assert in_rollout("c1", "p", 130)


def test_allow_list_admits_pilots_at_any_percentage() -> None:
    """Allow-listed pilot customers get the plugin even at 0 %; others do not."""
    assert in_rollout("pilot-1", "merchant-promo", 0, frozenset({"pilot-1"}))
    assert not in_rollout("c00001", "merchant-promo", 0, frozenset({"pilot-1"}))


def test_plugins_sample_independent_customers() -> None:
    """Two plugins at 50 % pick different halves (the plugin id salts the hash)."""
    a = {c for c in CUSTOMERS if in_rollout(c, "plugin-a", 50)}
    b = {c for c in CUSTOMERS if in_rollout(c, "plugin-b", 50)}
    overlap = 100 * len(a & b) / len(CUSTOMERS)
    assert 23 <= overlap <= 27
