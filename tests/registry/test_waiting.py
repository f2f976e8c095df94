"""What waits for one more reviewer: the ``waiting`` filter of both listings (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import InvalidInput, RegistryService
from sqlalchemy import event

from .conftest import platform_registry

Submit = Callable[..., Any]
Approve = Callable[..., Any]

_HIGH = {"slot:home.notice": "show notices", "pension:read": "read the pension balance"}


@pytest.fixture
def registry(db: Database, tmp_path: Path, clock: Any) -> RegistryService:
    """The registry over the migrated platform database (each backend), with two publishers."""
    return platform_registry(db, tmp_path, clock)


class Queue:
    """Releases in every state around a second reviewer, submitted by alice in version order.

    ``waiting`` are the ids one more reviewer completes; the others must never be listed.
    """

    def __init__(self, registry: RegistryService, submit: Submit, approve: Approve, manifest: Any) -> None:
        self.registry = registry
        self._submit, self._approve, self._manifest = submit, approve, manifest
        self._patch = 0
        self.waiting: list[int] = []
        self.approval: list[int] = []  # waiting for a second approval (bob approved)
        self.resume: list[int] = []  # waiting for a second agreement to resume (ops suspended, dave agreed)

    def release(self, *, high: bool = True, **knobs: Any) -> int:
        self._patch += 1
        scopes = {"required": _HIGH if high else {"slot:home.notice": "show notices"}, "optional": {}}
        knobs.setdefault("manifest", self._manifest(scopes=scopes))
        return int(self._submit(version=f"1.0.{self._patch}", **knobs).id)

    def suspended(self) -> int:
        rid = self.release()
        self._approve(rid, "bob")
        self._approve(rid, "carol")
        self.registry.suspend(rid, actor="ops", reason="incident")
        return rid

    def build(self) -> None:
        """Two of each waiting kind among releases that are not waiting, interleaved."""
        registry = self.registry
        for _ in range(2):
            self.release()  # in review, nobody approved yet
            rid = self.release()
            self._approve(rid, "bob")  # one of two
            self.approval.append(rid)
            self._approve(self.release(high=False), "bob")  # one of one: approved
            self.suspended()  # nobody agreed to resume
            rid = self.suspended()
            registry.resume(rid, actor="dave", reason="patched")  # one of two
            self.resume.append(rid)
        resumed = self.suspended()
        registry.resume(resumed, actor="dave", reason="patched")
        registry.resume(resumed, actor="erin", reason="checked")  # two of two: approved
        retired = self.suspended()
        registry.resume(retired, actor="dave", reason="patched")
        registry.retire(retired, actor="ops", reason="replaced")  # can never be resumed
        again = self.suspended()
        registry.resume(again, actor="dave", reason="patched")
        registry.resume(again, actor="erin", reason="checked")
        registry.suspend(again, actor="frank", reason="incident 2")  # the old agreements count no more
        self.waiting = sorted(self.approval + self.resume)


@pytest.fixture
def queue(registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]) -> Queue:
    """The built queue."""
    built = Queue(registry, submit, approve, manifest)
    built.build()
    return built


def _all_pages(registry: RegistryService, **query: Any) -> tuple[list[int], list[int], set[int]]:
    """Every listed id, page by page of two, with each page's length and the totals reported."""
    ids: list[int] = []
    lengths: list[int] = []
    totals: set[int] = set()
    cursor = None
    while True:
        page = registry.list_releases({**query, "limit": 2, **({"cursor": cursor} if cursor else {})})
        ids += [r.id for r in page.items]
        lengths.append(len(page.items))
        totals.add(page.total)
        cursor = page.next_cursor
        if cursor is None:
            return ids, lengths, totals


def test_waiting_lists_exactly_what_one_more_reviewer_completes_across_full_pages(queue: Queue) -> None:
    """Four waiting among fourteen releases: two full pages of two, oldest first, total four."""
    ids, lengths, totals = _all_pages(queue.registry, waiting=True)
    assert ids == queue.waiting
    assert lengths == [2, 2]
    assert totals == {4}
    for release in queue.registry.list_releases({"waiting": True}).items:
        if release.state == "in_review":
            assert release.approvals == ("bob",)
        else:
            assert release.pending_resume is not None
            assert [a.by for a in release.pending_resume.agreed] == ["dave"]


def test_a_waiting_page_costs_as_many_statements_whatever_its_size(queue: Queue, db: Database) -> None:
    """The filter is part of the paged query: pages of one and of three (each holding a suspended
    release), for a reviewer too, take as many statements (no query per release)."""
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    after = str(queue.waiting[0])
    counts = []
    for limit, reviewer in ((1, None), (3, None), (1, "erin"), (3, "erin")):
        query = {"waiting": True, "limit": limit, "cursor": after}
        if reviewer:
            query["reviewer"] = reviewer
        statements.clear()
        assert len(queue.registry.list_releases(query).items) == limit
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert counts[2] == counts[3] == counts[0] + 1  # the reviewer's spellings: one query


def test_waiting_combines_with_the_other_filters(queue: Queue) -> None:
    """``state`` picks one kind of wait; a filter nothing matches lists nothing."""
    registry = queue.registry

    def ids(state: str) -> list[int]:
        return [r.id for r in registry.list_releases({"waiting": True, "state": state}).items]

    assert (ids("in_review"), ids("suspended")) == (queue.approval, queue.resume)
    assert registry.list_releases({"waiting": True, "state": "approved"}).total == 0
    assert registry.list_releases({"waiting": True, "publisher": "fund-partner"}).total == 0


def test_an_item_drops_out_once_the_second_reviewer_acts(queue: Queue, approve: Approve) -> None:
    """The second approval approves, the second agreement resumes: neither waits any more."""
    registry = queue.registry
    approve(queue.approval[0], "carol")
    registry.resume(queue.resume[0], actor="erin", reason="checked")
    registry.reject(queue.approval[1], reviewer="carol", reasons=["the scope reason is wrong"])
    registry.retire(queue.resume[1], actor="ops", reason="replaced")
    assert registry.list_releases({"waiting": True}).items == ()


def test_a_reviewer_sees_only_what_they_may_complete(queue: Queue) -> None:
    """Not alice's submissions, not what bob approved, not what dave agreed to or ops suspended;
    compared as people, whatever the spelling."""
    registry = queue.registry

    def mine(reviewer: str) -> list[int]:
        return [r.id for r in registry.list_releases({"waiting": True, "reviewer": reviewer}).items]

    assert mine("erin") == queue.waiting
    assert mine(" Alice ") == []
    assert mine("BOB") == queue.resume  # an approver may resume
    assert mine("dave") == queue.approval
    assert mine("Ops") == queue.approval
    assert mine("carol") == queue.waiting  # she approved the suspended ones before, not these
    ids, lengths, _ = _all_pages(registry, waiting=True, reviewer="dave")
    assert (ids, lengths) == (queue.approval, [2])


def test_a_second_approval_waits_for_a_suspended_publisher_to_come_back(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> None:
    """Approving a suspended publisher's release is refused, so it is not listed until reinstated;
    meanwhile the release read says why (``publisher_suspended``), in a listing and alone."""
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    assert registry.get_release(rid).publisher_suspended is False
    registry.suspend_publisher("pension-dept", actor="ops", reason="audit")
    assert registry.list_releases({"waiting": True}).total == 0
    assert [r.publisher_suspended for r in registry.list_releases().items] == [True]
    assert registry.get_release(rid).publisher_suspended is True
    registry.reinstate_publisher("pension-dept", actor="dave", reason="closed")  # nothing running: one
    assert [r.id for r in registry.list_releases({"waiting": True}).items] == [rid]
    assert registry.get_release(rid).publisher_suspended is False


def test_publishers_half_reinstated_are_listed_for_whoever_may_complete_them(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> None:
    """A pension:read release running: rita's agreement leaves it waiting, but not for alice (a
    submitter), ops (who suspended it) or rita; the second agreement takes it off the list."""
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    approve(rid, "carol")
    partner = manifest("fund-offers", "fund-partner", kind="partner")
    entry = "[fulcrum]\nfund-offers = x.plugin\n"
    offers = submit(
        publisher="fund-partner", by="paul", manifest=partner, entry_points=entry, dist="fulcrum_fund_offers"
    )
    assert offers.failed_checks == ()
    approve(int(offers.id), "bob")
    registry.suspend_publisher("pension-dept", actor="ops", reason="audit")
    registry.suspend_publisher("fund-partner", actor="ops", reason="contract")

    def waiting(reviewer: str | None = None) -> list[str]:
        query = {"waiting": True, **({"reviewer": reviewer} if reviewer else {})}
        return [p.id for p in registry.list_publishers(query).items]

    assert waiting() == []  # nobody agreed yet
    registry.reinstate_publisher("pension-dept", actor="rita", reason="closed")
    assert waiting() == ["pension-dept"]
    assert [p.id for p in registry.list_publishers().items] == ["fund-partner", "pension-dept"]
    for barred in ("ALICE", "ops", " Rita"):
        assert waiting(barred) == []
    assert waiting("paul") == waiting("erin") == ["pension-dept"]
    registry.reinstate_publisher("pension-dept", actor="erin", reason="checked")
    assert waiting() == waiting("paul") == []


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [
        ({"reviewer": "erin"}, "reviewer", "ask for waiting too"),
        ({"waiting": True, "reviewer": "   "}, "reviewer", "must name who acts"),
        ({"waiting": True, "reviewer": ""}, "reviewer", "must not be empty"),
        ({"waiting": True, "reviewer": "x" * 201}, "reviewer", "at most 200 characters"),
        ({"waiting": "yes"}, "waiting", "Expected `bool`"),
    ],
)
def test_bad_waiting_filters_name_the_field(
    registry: RegistryService, query: dict[str, Any], field: str, problem: str
) -> None:
    """Both listings refuse a reviewer without ``waiting``, a blank or overlong one, a non-boolean."""
    for listing in (registry.list_releases, registry.list_publishers):
        with pytest.raises(InvalidInput) as caught:
            listing(query)
        assert caught.value.field == field
        assert problem in caught.value.problem


def _publisher_pages(registry: RegistryService, **query: Any) -> tuple[list[str], list[int], set[int]]:
    """Every listed publisher id, page by page of two, with each page's length and the totals reported."""
    ids: list[str] = []
    lengths: list[int] = []
    totals: set[int] = set()
    cursor = None
    while True:
        page = registry.list_publishers({**query, "limit": 2, **({"cursor": cursor} if cursor else {})})
        ids += [p.id for p in page.items]
        lengths.append(len(page.items))
        totals.add(page.total)
        cursor = page.next_cursor
        if cursor is None:
            return ids, lengths, totals


def test_publishers_are_paged_as_releases_are_waiting_or_not(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> None:
    """Keyset pages by id with ``next_cursor`` and ``total``, full to the last, for every publisher and
    for those waiting (for anyone, for one reviewer); a bad cursor or limit names the field."""
    waiting = []
    for name in ("dept-a", "dept-b", "dept-c", "dept-d"):
        new = {"id": name, "name": name, "kind": "department", "contact": f"ops@{name}.example"}
        registry.create_publisher(new, actor="platform")
        if name == "dept-c":
            continue  # suspended below without a running release: one agreement reinstates it at once
        plugin = f"plug-{name[-1]}"
        entry = f"[fulcrum]\n{plugin} = x.plugin\n"
        found = manifest(plugin, name, scopes={"required": _HIGH, "optional": {}})
        dist = "fulcrum_" + plugin.replace("-", "_")
        rid = int(submit(publisher=name, by="paul", manifest=found, entry_points=entry, dist=dist).id)
        approve(rid, "bob")
        approve(rid, "carol")
        registry.suspend_publisher(name, actor="ops", reason="audit")
        registry.reinstate_publisher(name, actor="rita", reason="closed")  # one of two
        waiting.append(name)
    everyone = sorted(["dept-a", "dept-b", "dept-c", "dept-d", "fund-partner", "pension-dept"])
    assert _publisher_pages(registry) == (everyone, [2, 2, 2], {6})
    assert _publisher_pages(registry, waiting=True) == (waiting, [2, 1], {3})
    assert _publisher_pages(registry, waiting=True, reviewer="erin") == (waiting, [2, 1], {3})
    assert _publisher_pages(registry, waiting=True, reviewer="Paul") == ([], [0], {0})
    assert registry.list_publishers().next_cursor is None  # the default page holds them all
    bad = (({"cursor": "Not A Slug"}, "cursor"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit"))
    for query, field in bad:
        with pytest.raises(InvalidInput) as caught:
            registry.list_publishers(query)
        assert caught.value.field == field


def test_a_reviewer_listing_reads_only_the_names_of_what_waits(
    registry: RegistryService,
    submit: Submit,
    approve: Approve,
    manifest: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Comparing a reviewer as a person reads the names on the rows of what waits (its submitter, its
    approver), not every submitter, reviewer and kill-switch actor the registry ever recorded: a long
    finished history adds nothing to a reviewer's listing."""
    import fulcrum_registry.waiting as waiting

    for n in range(12):  # a finished history: twelve submitters, twelve approvers, twelve who suspended
        rid = int(submit(by=f"old-submitter-{n}", version=f"0.{n}.0").id)
        approve(rid, f"old-reviewer-{n}")
        registry.suspend(rid, actor=f"old-ops-{n}", reason="incident")
        registry.retire(rid, actor="ops", reason="replaced")
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    compared: list[str] = []
    key = waiting.person_key
    monkeypatch.setattr(waiting, "person_key", lambda name: compared.append(name) or key(name))
    for listing in (registry.list_releases, registry.list_publishers):
        listing({"waiting": True, "reviewer": "Erin"})
    assert [r.id for r in registry.list_releases({"waiting": True, "reviewer": "erin"}).items] == [rid]
    assert not [name for name in compared if name.startswith("old-")], compared
    assert len(compared) <= 8
