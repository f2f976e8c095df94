"""The ``waiting`` filter against an independent model over random histories (SQLite and PostgreSQL).

Random moves by a few people, each spelt several ways (case, spaces, full-width letters), build a
registry; then for everyone and for each spelling of each person, what the listings say waits is
compared with what the release and publisher reads imply, computed in Python with ``person_key``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import REVIEW_CHECKLIST, RegistryError, RegistryService
from fulcrum_registry.schemas import PublisherRead, ReleaseRead
from fulcrum_registry.workflow import person_key

from .conftest import platform_registry

_PEOPLE = ("alice", "bob", "carol", "dave")
_LOW = {"slot:home.notice": "show notices"}
_HIGH = {**_LOW, "pension:read": "read the pension balance"}


def _spelt(rng: random.Random, name: str) -> str:
    """``name`` as someone might type it: as is, in capitals, padded, or in full-width letters."""
    return rng.choice(
        [name, name.upper(), f" {name.title()} ", "".join(chr(ord(c) + 0xFEE0) for c in name)]
    )


@pytest.fixture
def registry(db: Database, tmp_path: Path, clock: Any) -> RegistryService:
    """The registry over the migrated platform database (each backend), with two publishers."""
    return platform_registry(db, tmp_path, clock)


def _history(
    registry: RegistryService, submit: Callable[..., Any], manifest: Callable[..., Any], seed: int
) -> None:
    """Ninety random moves, each on a release in a state it applies to; those the registry refuses (four
    eyes, a suspended publisher) are simply not made."""
    rng = random.Random(seed)
    moves = ["submit"] * 4 + ["approve"] * 8 + ["reject", "retire", "suspend-publisher"]
    moves += ["suspend"] * 3 + ["resume"] * 5 + ["reinstate"] * 4
    applies = {"approve": ("in_review",), "reject": ("in_review",), "suspend": ("approved",),
               "resume": ("suspended",), "retire": ("approved", "suspended")}
    for step in range(90):
        who = _spelt(rng, rng.choice(_PEOPLE))
        move = rng.choice(moves)
        publisher = rng.choice(["pension-dept", "fund-partner"])
        states = applies.get(move, ())
        targets = [r.id for r in registry.list_releases({"limit": 100}).items if r.state in states]
        try:
            if move in applies and not targets:
                continue
            if move == "submit":
                scopes = {"required": rng.choice([_LOW, _HIGH, _HIGH]), "optional": {}}
                extra: dict[str, Any] = {}
                found = manifest(scopes=scopes)
                if publisher == "fund-partner":
                    found = manifest("fund-offers", publisher, kind="partner", scopes=scopes)
                    extra = {
                        "entry_points": "[fulcrum]\nfund-offers = x.plugin\n",
                        "dist": "fulcrum_fund_offers",
                    }
                submit(publisher=publisher, by=who, manifest=found, version=f"1.0.{step}", **extra)
            elif move == "approve":
                registry.approve(
                    rng.choice(targets), reviewer=who, checklist=dict.fromkeys(REVIEW_CHECKLIST, True)
                )
            elif move == "reject":
                registry.reject(rng.choice(targets), reviewer=who, reasons=["no"])
            elif move in applies:
                getattr(registry, move)(rng.choice(targets), actor=who, reason="r")
            elif move == "suspend-publisher":
                registry.suspend_publisher(publisher, actor=who, reason="r")
            else:
                registry.reinstate_publisher(publisher, actor=who, reason="r")
        except RegistryError:
            pass


def _release_waits(release: ReleaseRead, who: str | None) -> bool:
    """The model: does ``release`` wait for one more person (``who``, when given)?"""
    key = person_key(who) if who is not None else None
    if release.state == "in_review" and release.approvals and not release.publisher_suspended:
        return key is None or (
            key != person_key(release.submitted_by)
            and all(person_key(r.reviewer) != key for r in release.reviews)
        )
    pending = release.pending_resume
    if release.state == "suspended" and pending is not None:
        return key is None or (
            key != person_key(release.submitted_by)
            and all(person_key(a.by) != key for a in pending.agreed)
            and (pending.suspended_by is None or person_key(pending.suspended_by) != key)
        )
    return False


def _publisher_waits(publisher: PublisherRead, submitters: set[str], who: str | None) -> bool:
    """The model: does ``publisher`` wait for one more agreement (by ``who``, when given)?"""
    pending = publisher.pending_reinstatement
    if not publisher.suspended or pending is None:
        return False
    if who is None:
        return True
    key = person_key(who)
    return (
        all(person_key(s) != key for s in submitters)
        and all(person_key(a.by) != key for a in pending.agreed)
        and (pending.suspended_by is None or person_key(pending.suspended_by) != key)
    )


@pytest.mark.parametrize("seed", [4, 8, 9, 15])  # among them, every kind of wait
def test_waiting_matches_the_model_over_random_histories(
    registry: RegistryService, submit: Callable[..., Any], manifest: Callable[..., Any], seed: int
) -> None:
    """For anyone and for every spelling of every person, both listings list exactly what the model says
    waits, page by page."""
    _history(registry, submit, manifest, seed)
    releases = list(registry.list_releases({"limit": 100}).items)
    publishers = list(registry.list_publishers().items)
    submitters = {p.id: {r.submitted_by for r in releases if r.publisher_id == p.id} for p in publishers}
    assert any(_release_waits(r, None) for r in releases) or any(
        _publisher_waits(p, submitters[p.id], None) for p in publishers
    )  # the history leaves something waiting
    rng = random.Random(seed)
    askers: list[str | None] = [None, *(_spelt(rng, p) for p in _PEOPLE for _ in range(2)), "erin"]
    for who in askers:
        query: dict[str, Any] = {"waiting": True, **({"reviewer": who} if who is not None else {})}
        listed, cursor = [], None
        while True:
            page = registry.list_releases({**query, "limit": 3, **({"cursor": cursor} if cursor else {})})
            listed += [r.id for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert listed == [r.id for r in releases if _release_waits(r, who)], (seed, who)
        assert [p.id for p in registry.list_publishers(query).items] == [
            p.id for p in publishers if _publisher_waits(p, submitters[p.id], who)
        ], (seed, who)
