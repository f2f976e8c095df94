"""The registry on the platform database, migrated by the one alembic history (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import REVIEW_CHECKLIST, InvalidInput, RegistryService
from fulcrum_registry.models import RegistryBase
from sqlalchemy import inspect
from sqlalchemy.orm import sessionmaker


@pytest.fixture
def platform_registry(db: Database, tmp_path: Path, clock: Any) -> RegistryService:
    """A registry over the migrated platform database, with the host's writer and reader sessions."""
    return RegistryService(
        sessionmaker(bind=db.engine, expire_on_commit=False),
        tmp_path / "artifacts",
        clock,
        read_session_factory=sessionmaker(bind=db.reader, expire_on_commit=False),
        sdk_version="0.2.0",
    )


def test_migrations_create_every_registry_table(db: Database) -> None:
    """Upgrading to head creates exactly the tables the registry's models declare, and check agrees."""
    assert set(RegistryBase.metadata.tables) <= set(inspect(db.engine).get_table_names())
    db.check()


def test_the_whole_workflow_runs_on_the_migrated_schema(
    platform_registry: RegistryService, wheels: Callable[..., Path], manifest: Callable[..., dict[str, Any]]
) -> None:
    """Submit, two approvals, suspend, resume, catalogue and an intact audit chain on each backend."""
    registry = platform_registry
    registry.create_publisher(
        {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"},
        actor="p",
    )
    body = manifest(
        scopes={"required": {"slot:home.notice": "notices", "pension:read": "project the pension"}}
    )
    path = wheels(manifest=body)
    release = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert release.state == "in_review"
    checklist = dict.fromkeys(REVIEW_CHECKLIST, True)
    registry.approve(release.id, reviewer="bob", checklist=checklist)
    approved = registry.approve(release.id, reviewer="carol", checklist=checklist)
    assert approved.state == "approved"
    registry.suspend(release.id, actor="ops", reason="incident")
    assert registry.active_policy() == {}
    registry.resume(release.id, actor="dave", reason="fixed")  # high-sensitivity: the first of two
    assert registry.active_policy() == {}
    registry.resume(release.id, actor="erin", reason="fixed")
    assert registry.active_policy()["demo"]["1.0.0"].granted_scopes == {"slot:home.notice", "pension:read"}
    assert [p.id for p in registry.catalogue({"scope": "pension:read"}).items] == ["demo"]
    assert [p.id for p in registry.catalogue({"text": "演示"}).items] == ["demo"]
    assert registry.verify_audit_chain() is None
    assert registry.get_release(release.id).submitted_at.tzinfo is not None


def test_concurrent_submissions_of_one_version_admit_exactly_one(
    platform_registry: RegistryService, wheels: Callable[..., Path]
) -> None:
    """Workers submitting different builds of one new version at once: one goes to review, the rest
    fail the version check."""
    registry = platform_registry
    registry.create_publisher(
        {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"},
        actor="p",
    )
    builds = [wheels(extra_files={"fulcrum_demo/build.txt": str(n).encode()}).read_bytes() for n in range(4)]
    start = threading.Barrier(4)

    def worker(n: int) -> str:
        start.wait()
        release = registry.submit(
            builds[n],
            filename="fulcrum_demo-1.0.0-py3-none-any.whl",
            publisher_id="pension-dept",
            submitted_by=f"w{n}",
        )
        return release.state

    with ThreadPoolExecutor(max_workers=4) as pool:
        states = sorted(pool.map(worker, range(4)))
    assert states == ["checks_failed", "checks_failed", "checks_failed", "in_review"]
    assert registry.verify_audit_chain() is None
    assert registry.catalogue().total == 1


def test_concurrent_retries_of_one_wheel_file_one_release(
    platform_registry: RegistryService, wheels: Callable[..., Path]
) -> None:
    """The identical wheel sent four times at once (retries after a lost answer) files one release;
    every caller gets that release, exactly one of them as created."""
    registry = platform_registry
    registry.create_publisher(
        {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"},
        actor="p",
    )
    data = wheels().read_bytes()
    start = threading.Barrier(4)

    def worker(n: int) -> tuple[int, bool, str]:
        start.wait()
        submitted = registry.submission(
            data, filename="fulcrum_demo-1.0.0-py3-none-any.whl", publisher_id="pension-dept",
            submitted_by=f"w{n}",
        )
        return submitted.release.id, submitted.created, submitted.release.state

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(worker, range(4)))
    assert {(release_id, state) for release_id, _, state in outcomes} == {(outcomes[0][0], "in_review")}
    assert sorted(created for _, created, _ in outcomes) == [False, False, False, True]
    assert registry.list_releases().total == 1
    assert registry.verify_audit_chain() is None


def test_nul_characters_are_refused_naming_the_field_on_every_backend(
    platform_registry: RegistryService, wheels: Callable[..., Path], manifest: Callable[..., dict[str, Any]]
) -> None:
    """PostgreSQL text cannot hold NUL: a publisher field or manifest text with one is refused as input."""
    registry = platform_registry
    good = {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"}
    for field, value in (("name", "养老\x00"), ("name_en", "\x00"), ("contact", "ops@bank\x00.example")):
        with pytest.raises(InvalidInput) as refused:
            registry.create_publisher({**good, "id": "nul-dept", field: value}, actor="p")
        assert refused.value.field == field
    with pytest.raises(InvalidInput) as refused:
        registry.create_publisher(good, actor="p\x00")
    assert refused.value.field == "actor"
    registry.create_publisher(good, actor="p")
    body = manifest(name={"zh-CN": "演示\x00", "en": "Demo"})
    path = wheels(manifest=body)
    release = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert release.state == "checks_failed"
    check = next(c for c in release.checks if c.id == "manifest.present_and_valid")
    # NUL is a control character: refused as display text first, naming the character.
    assert check.details == ("name.zh-CN: U+0000 NULL at index 2 is not allowed in display text",)
    assert registry.verify_audit_chain() is None


def test_display_text_that_could_spoof_is_refused_naming_the_field_on_every_backend(
    platform_registry: RegistryService, wheels: Callable[..., Path], manifest: Callable[..., dict[str, Any]]
) -> None:
    """A publisher's name, and a submitted manifest's display name and scope reasons (what the consent
    page shows), holding a bidi isolate or override are refused naming the field and the character; a
    name in Chinese with an emoji sequence passes."""
    registry = platform_registry
    good = {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"}
    for field, value in (("name", "养老\u202e部"), ("name_en", "Pension\u2066"), ("name", "养老\n部")):
        with pytest.raises(InvalidInput) as refused:
            registry.create_publisher({**good, "id": "spoof-dept", field: value}, actor="p")
        assert refused.value.field == field
        assert refused.value.problem.startswith("U+")
        assert "is not allowed in display text" in refused.value.problem
    registry.create_publisher({**good, "name": "养老金融部 👨\u200d👩\u200d👧"}, actor="p")
    spoofed = {
        "name.zh-CN": manifest(name={"zh-CN": "演示\u2066插件"}),
        "scopes.required.slot:home.notice": manifest(
            scopes={"required": {"slot:home.notice": "show \u2066notices"}, "optional": {}}
        ),
    }
    for key, body in spoofed.items():
        path = wheels(manifest=body)
        release = registry.submit(
            path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
        )
        assert release.state == "checks_failed"
        check = next(c for c in release.checks if c.id == "manifest.present_and_valid")
        index = 2 if key == "name.zh-CN" else 5
        assert check.details == (
            f"{key}: U+2066 LEFT-TO-RIGHT ISOLATE at index {index} is not allowed in display text",
        )
    assert registry.verify_audit_chain() is None


def test_an_approval_and_a_rejection_at_once_leave_exactly_one_decision(
    platform_registry: RegistryService, wheels: Callable[..., Path]
) -> None:
    """Two reviewers deciding the same release at the same moment: one wins, the other is refused with
    the new state, and no review, grant or audit row of the loser is left behind."""
    from fulcrum_registry import IllegalTransition

    registry = platform_registry
    registry.create_publisher(
        {"id": "pension-dept", "name": "养老金融部", "kind": "department", "contact": "ops@bank.example"},
        actor="p",
    )
    path = wheels()
    rid = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    ).id
    start = threading.Barrier(2)

    def decide(approve: bool) -> str:
        start.wait()
        try:
            if approve:
                return registry.approve(
                    rid, reviewer="bob", checklist=dict.fromkeys(REVIEW_CHECKLIST, True)
                ).state
            return registry.reject(rid, reviewer="dave", reasons=["no"]).state
        except IllegalTransition as exc:
            return f"refused in {exc.current}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        approved, rejected = pool.map(decide, (True, False))
    final = registry.get_release(rid)
    assert sorted([approved, rejected]) in (
        ["approved", "refused in approved"],
        ["refused in rejected", "rejected"],
    )
    assert len(final.reviews) == 1
    assert final.reviews[0].decision == ("approve" if final.state == "approved" else "reject")
    decisions = [e.action for e in registry.audit_events(subject=f"release:{rid}")]
    assert decisions.count("release.approve") + decisions.count("release.reject") == 1
    assert registry.verify_audit_chain() is None


def test_a_plugins_releases_include_those_filed_unclaimed_on_every_backend(
    platform_registry: RegistryService, wheels: Callable[..., Path], manifest: Callable[..., dict[str, Any]]
) -> None:
    """Listing one plugin's releases finds the one its second publisher could not claim the id for
    (filed without a plugin id, its manifest naming it), through the JSON path each database spells its
    own way; another plugin's listing does not."""
    registry = platform_registry
    for pid in ("pension-dept", "other-dept"):
        registry.create_publisher(
            {"id": pid, "name": f"{pid} 部门", "kind": "department", "contact": "ops@bank.example"}, actor="p"
        )
    path = wheels(manifest=manifest())
    for publisher in ("pension-dept", "other-dept"):
        registry.submit(path.read_bytes(), filename=path.name, publisher_id=publisher, submitted_by="alice")
    listed = registry.list_releases({"plugin": "demo"}).items
    assert [(r.publisher_id, r.plugin_id) for r in listed] == [("pension-dept", "demo"), ("other-dept", None)]
    assert registry.list_releases({"plugin": "other"}).items == ()
