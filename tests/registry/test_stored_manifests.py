"""Releases filed under older manifest rules: listed and marked with the problem, never live, and still
suspended, rejected or retired through the usual calls (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import Conflict, InvalidInput, LeftOut, RegistryService

from .conftest import FakeClock, base_manifest, platform_registry
from .old_rules import OLD_ROWS, file_under_old_rules

Submit = Callable[..., Any]
Approve = Callable[..., Any]


@pytest.fixture
def registry(db: Database, tmp_path: Path, clock: FakeClock) -> RegistryService:
    """The registry on the migrated platform database of each backend, with two publishers."""
    return platform_registry(db, tmp_path, clock)


def _other(submit: Submit, approve: Approve) -> int:
    """An approved release of another plugin, which filed under today's rules: the control."""
    release = submit(
        dist="fulcrum_other", package="fulcrum_other", manifest=base_manifest("other"),
        entry_points="[fulcrum]\nother = fulcrum_other.plugin\n",
    )
    assert approve(release.id).state == "approved", release.failed_checks
    return int(release.id)


@pytest.fixture(params=list(OLD_ROWS))
def old(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str, str]:
    """Each kind of manifest an older registry filed: its keys, the key named today, the problem's words."""
    return OLD_ROWS[request.param]


def test_listings_show_an_old_release_marked_with_its_key_and_problem(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """Every listing still shows the release, with the key and the problem in words; the others are
    unmarked, and a filter naming an id taken before ids refused ``--`` still finds it."""
    changes, key, words = old
    release = submit()
    approve(release.id)
    other = _other(submit, approve)
    file_under_old_rules(db.engine, release.id, **changes)
    listed = {r.id: r for r in registry.list_releases().items}
    assert set(listed) == {release.id, other}
    marked = listed[release.id].manifest_problem
    assert marked is not None
    assert (marked.key, words in marked.problem) == (key, True), marked
    assert "regex" not in marked.problem
    assert listed[other].manifest_problem is None
    assert registry.get_release(release.id).manifest_problem == marked
    plugin = changes.get("id", "demo")
    assert [r.id for r in registry.list_releases({"plugin": plugin}).items] == [release.id]
    assert [r.id for r in registry.list_releases({"state": "approved"}).items] == [release.id, other]


def test_the_live_policy_leaves_an_old_release_out_and_says_why(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """An approved release whose stored manifest fails today's rules never runs: it is missing from the
    live policy, which names it, and the consent page's approved manifest skips it; others stay live."""
    changes, key, _words = old
    release = submit()
    approve(release.id)
    _other(submit, approve)
    file_under_old_rules(db.engine, release.id, **changes)
    left_out: list[LeftOut] = []
    assert set(registry.active_policy(left_out=left_out)) == {"other"}
    [refused] = left_out
    assert (refused.release_id, refused.plugin_id, refused.version) == (
        release.id, changes.get("id", "demo"), "1.0.0",
    )
    assert refused.problem.key == key
    assert registry.approved_manifest(changes.get("id", "demo")) is None
    assert registry.approved_manifest("other") is not None


def test_an_old_release_is_suspended_and_retired_but_not_resumed(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """The kill switch works on it as on any release; resuming it is refused, naming the problem, since
    it could never run again."""
    changes, key, _words = old
    release = submit()
    approve(release.id)
    file_under_old_rules(db.engine, release.id, **changes)
    assert registry.suspend(release.id, actor="ops", reason="filed under old rules").state == "suspended"
    with pytest.raises(Conflict) as refused:
        registry.resume(release.id, actor="dave", reason="try again")
    assert f"fails today's rules ({key}: " in refused.value.detail
    assert "retire it" in refused.value.detail
    assert registry.retire(release.id, actor="ops", reason="filed under old rules").state == "retired"


def test_an_old_release_in_review_is_rejected_not_approved(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """Approving it is refused with the key and problem (it could never run); rejecting it works."""
    changes, key, _words = old
    release = submit()
    file_under_old_rules(db.engine, release.id, **changes)
    assert [r.id for r in registry.list_releases({"state": "in_review"}).items] == [release.id]
    with pytest.raises(Conflict) as refused:
        approve(release.id)
    assert f"fails today's rules ({key}: " in refused.value.detail
    assert "reject it" in refused.value.detail
    rejected = registry.reject(release.id, reviewer="bob", reasons=["filed under old rules"])
    assert rejected.state == "rejected"


def test_a_publisher_with_an_old_release_is_suspended_and_reinstated(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """Counting who must agree to reinstate the publisher reads its releases: the old one breaks nothing."""
    changes, _key, _words = old
    release = submit()
    approve(release.id)
    file_under_old_rules(db.engine, release.id, **changes)
    assert registry.suspend_publisher("pension-dept", actor="ops", reason="incident").suspended
    assert not registry.reinstate_publisher("pension-dept", actor="dave", reason="fixed").suspended


def test_the_diff_of_an_old_release(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve, old: tuple[Any, str, str]
) -> None:
    """A manifest today's rules cannot read is no diff, which says why (a 4xx, not a crash); one they
    read (a redirect URI they refuse) is diffed as before."""
    changes, key, _words = old
    release = submit()
    file_under_old_rules(db.engine, release.id, **changes)
    if key.startswith("oauth."):
        assert registry.diff(release.id).added_redirect_uris == tuple(changes["oauth"]["redirect_uris"])
        return
    with pytest.raises(InvalidInput) as refused:
        registry.diff(release.id)
    assert refused.value.field == "release"
    assert f"fails today's rules ({key}: " in refused.value.problem


def test_an_old_approved_release_is_no_baseline(
    registry: RegistryService, db: Database, submit: Submit, approve: Approve
) -> None:
    """Never running, an old release is not what the next one is compared with: all it asks is new."""
    first = submit()
    approve(first.id)
    file_under_old_rules(db.engine, first.id, **OLD_ROWS["a name with a right-to-left override"][0])
    second = submit(version="1.1.0")
    diff = registry.diff(second.id)
    assert diff.baseline_release_id is None
    assert diff.added_scopes == ("slot:home.notice",)
