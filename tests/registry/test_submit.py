"""Submitting wheels: artifacts stored, checks run, releases filed, plugin ids claimed, bad input refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_registry import InvalidInput, NotFound, RegistryService
from fulcrum_registry.models import Plugin, Release
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

Submit = Callable[..., Any]
Manifest = Callable[..., dict[str, Any]]


def count(engine: Engine, model: type[Any]) -> int:
    """Rows in a table."""
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_good_wheel_goes_to_review(registry: RegistryService, submit: Submit) -> None:
    """A passing wheel is filed in_review with its artifact, manifest snapshot and requested scopes."""
    release = submit()
    assert release.state == "in_review"
    assert release.failed_checks == ()
    assert release.plugin_id == "demo"
    assert release.version == "1.0.0"
    assert release.requested.required == ("slot:home.notice",)
    assert release.granted_scopes is None
    assert release.manifest is not None
    assert release.manifest.version == "1.0.0"
    stored = registry.artifact(release.id)
    assert stored.sha256 == release.artifact.sha256
    assert stored.path.read_bytes()[:2] == b"PK"
    actions = [e.action for e in registry.audit_events(subject=f"release:{release.id}")]
    assert actions == ["release.submitted", "release.pass_checks"]


def test_failed_checks_file_the_release_with_every_failure(
    registry: RegistryService, submit: Submit, manifest: Manifest
) -> None:
    """A failing wheel is filed checks_failed listing every failed check, and audited."""
    release = submit(manifest=manifest(hooks=["nope"], sdk=">=5"))
    assert release.state == "checks_failed"
    assert set(release.failed_checks) == {"manifest.hooks_known", "sdk.range_satisfiable"}
    events = registry.audit_events(subject=f"release:{release.id}")
    assert events[-1].action == "release.fail_checks"
    assert set(events[-1].payload["failed"]) == {"manifest.hooks_known", "sdk.range_satisfiable"}


def test_first_passing_submission_claims_the_plugin_id(
    registry: RegistryService, submit: Submit, engine: Engine
) -> None:
    """The plugin id belongs to the publisher whose submission first passed ownership."""
    submit()
    with Session(engine) as session:
        plugin = session.get(Plugin, "demo")
        assert plugin is not None
        assert plugin.publisher_id == "pension-dept"
        assert plugin.name == "演示插件"


def test_another_publisher_cannot_take_a_claimed_id(submit: Submit, manifest: Manifest) -> None:
    """A branch submitting a wheel for a department's plugin id fails ownership and is not linked to it."""
    submit()
    stolen = submit(
        publisher="branch-0755", manifest=manifest(publisher="branch-0755", kind="branch"), version="2.0.0"
    )
    assert stolen.state == "checks_failed"
    assert "publisher.owns_plugin" in stolen.failed_checks
    assert stolen.plugin_id is None


def test_a_foreign_manifest_claims_nothing(submit: Submit, engine: Engine) -> None:
    """A partner uploading a wheel that names a department publisher fails and claims no plugin id."""
    release = submit(publisher="fund-partner")
    assert release.state == "checks_failed"
    assert "publisher.owns_plugin" in release.failed_checks
    assert count(engine, Plugin) == 0


def test_garbage_upload_is_recorded_as_failed(
    registry: RegistryService, tmp_path: Path, engine: Engine
) -> None:
    """Bytes that are not a zip are stored and filed checks_failed, with no plugin."""
    release = registry.submit(
        b"not a zip", filename="x-1.0.0-py3-none-any.whl", publisher_id="pension-dept", submitted_by="alice"
    )
    assert release.state == "checks_failed"
    assert release.failed_checks == ("wheel.well_formed",)
    assert release.plugin_id is None
    assert release.manifest is None


def test_a_wheel_with_a_damaged_member_is_recorded_as_failed(
    registry: RegistryService, wheels: Callable[..., Path]
) -> None:
    """A zip whose member fails its CRC is filed checks_failed like any broken wheel, not an error."""
    path = wheels()
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside a member's compressed data, before the central directory
    release = registry.submit(
        bytes(data), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert release.state == "checks_failed"
    assert release.failed_checks == ("wheel.well_formed",)


def test_same_bytes_are_stored_once(
    registry: RegistryService, wheels: Callable[..., Path], tmp_path: Path
) -> None:
    """Identical bytes sent by two publishers are two releases over one artifact file."""
    path = wheels()
    first = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="a"
    )
    second = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="fund-partner", submitted_by="a"
    )
    assert first.id != second.id
    assert first.artifact.sha256 == second.artifact.sha256
    assert "publisher.owns_plugin" in second.failed_checks
    assert len(list((tmp_path / "artifacts").rglob("*.whl"))) == 1


def test_the_identical_wheel_again_is_the_release_it_filed(
    registry: RegistryService, wheels: Callable[..., Path], engine: Engine
) -> None:
    """A retry of the identical wheel by its publisher (an answer lost on the way) files no second
    release, in whatever state the first now is; a rebuilt wheel of that version is a new release."""
    path = wheels()
    first = registry.submission(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert first.created
    again = registry.submission(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert not again.created
    assert again.release == first.release
    registry.reject(first.release.id, reviewer="bob", reasons=["文案误导 / misleading text"])
    rejected = registry.submit(
        path.read_bytes(), filename=path.name, publisher_id="pension-dept", submitted_by="carol"
    )
    assert (rejected.id, rejected.state) == (first.release.id, "rejected")
    assert count(engine, Release) == 1
    failed = wheels(manifest=None)
    for _ in range(2):
        registry.submit(
            failed.read_bytes(), filename=failed.name, publisher_id="pension-dept", submitted_by="a"
        )
    rebuilt = wheels(extra_files={"fulcrum_demo/build.txt": b"2"})
    assert registry.submission(
        rebuilt.read_bytes(), filename=rebuilt.name, publisher_id="pension-dept", submitted_by="a"
    ).created
    assert count(engine, Release) == 3


def test_a_version_may_be_resubmitted_after_failed_checks(submit: Submit, manifest: Manifest) -> None:
    """Checks_failed releases never reached review, so the fixed wheel may reuse the version."""
    assert submit(manifest=manifest(hooks=["nope"])).state == "checks_failed"
    again = submit()
    assert again.state == "in_review"
    assert again.version == "1.0.0"


def test_a_rejected_version_is_never_reused(registry: RegistryService, submit: Submit) -> None:
    """After a rejection the same version (rebuilt) fails release.version_newer."""
    first = submit()
    registry.reject(first.id, reviewer="bob", reasons=["文案误导 / misleading text"])
    again = submit(extra_files={"fulcrum_demo/build.txt": b"2"})
    assert again.state == "checks_failed"
    assert again.failed_checks == ("release.version_newer",)


def test_older_version_fails_version_newer(submit: Submit) -> None:
    """0.9.0 after 1.0.0 fails release.version_newer."""
    submit()
    older = submit(version="0.9.0")
    assert older.failed_checks == ("release.version_newer",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"filename": "demo.zip"}, "filename"),
        ({"filename": "../x-1.0.0-py3-none-any.whl"}, "filename"),
        ({"filename": f"x-1.{'1' * 70}-py3-none-any.whl"}, "filename"),
        ({"wheel": b""}, "wheel"),
        ({"submitted_by": "  "}, "submitted_by"),
    ],
    ids=["not-a-wheel-name", "path-in-name", "version-too-long", "empty", "no-submitter"],
)
def test_bad_uploads_are_refused_without_a_trace(
    registry: RegistryService, engine: Engine, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    """Malformed uploads raise InvalidInput naming the field and store nothing."""
    args: dict[str, Any] = {
        "wheel": b"PK..",
        "filename": "x-1.0.0-py3-none-any.whl",
        "publisher_id": "pension-dept",
        "submitted_by": "alice",
    } | kwargs
    wheel = args.pop("wheel")
    with pytest.raises(InvalidInput) as caught:
        registry.submit(wheel, **args)
    assert caught.value.field == field
    assert count(engine, Release) == 0
    assert not (tmp_path / "artifacts").exists()


def test_oversized_upload_is_refused(engine: Engine, tmp_path: Path, clock: Any) -> None:
    """An upload over the size limit is refused before it is stored."""
    from sqlalchemy.orm import sessionmaker

    small = RegistryService(sessionmaker(engine), tmp_path / "a", clock, max_artifact_bytes=10)
    with pytest.raises(InvalidInput) as caught:
        small.submit(b"x" * 11, filename="x-1.0.0-py3-none-any.whl", publisher_id="p", submitted_by="a")
    assert caught.value.field == "wheel"


def test_unknown_publisher_is_not_found(
    registry: RegistryService, wheels: Callable[..., Path], engine: Engine, tmp_path: Path
) -> None:
    """Submitting for a publisher that does not exist raises NotFound and files nothing, not even the
    wheel: it was stored before the publisher was looked up, with no release to show for it."""
    path = wheels()
    with pytest.raises(NotFound):
        registry.submit(path.read_bytes(), filename=path.name, publisher_id="ghost", submitted_by="a")
    assert count(engine, Release) == 0
    assert [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []


def _ordering(manifest: Manifest, plugin_id: str, key: str) -> dict[str, Any]:
    return manifest(
        plugin_id=plugin_id, hooks=["register_transaction_types", "execute_transaction"],
        slots=[], transaction_types={key: {"risk_level": "R2", "amount_field": "amount_fen"}},
        scopes={"required": {"transactions:write": "take the customer's orders"}, "optional": {}},
    )


def test_a_transaction_type_of_another_plugin_cannot_be_declared(
    registry: RegistryService, submit: Submit, manifest: Manifest
) -> None:
    """A second plugin declaring a transaction type a live release of another plugin declares fails
    ``transaction_types.unclaimed`` naming the owner; once the owner's release is rejected the key is
    free again. The owner's own next version keeps its key."""
    first = submit(manifest=_ordering(manifest, "demo", "demo.order"))
    assert first.state == "in_review", first.checks
    taker = submit(
        manifest=_ordering(manifest, "taker", "demo.order"),
        entry_points="[fulcrum]\ntaker = fulcrum_demo.plugin\n", dist="fulcrum_taker",
    )
    assert taker.state == "checks_failed"
    assert taker.failed_checks == ("transaction_types.unclaimed",)
    check = next(c for c in taker.checks if c.id == "transaction_types.unclaimed")
    assert check.details == ("'demo.order' is declared by plugin 'demo'",)
    again = submit(manifest=_ordering(manifest, "demo", "demo.order"), version="1.1.0")
    assert again.state == "in_review", again.checks
    for release in (first, again):
        registry.reject(release.id, reviewer="bob", reasons=["not now"])
    free = submit(
        manifest=_ordering(manifest, "taker", "demo.order"), version="1.1.0",
        entry_points="[fulcrum]\ntaker = fulcrum_demo.plugin\n", dist="fulcrum_taker",
    )
    assert free.state == "in_review", free.checks


def test_a_submission_whose_types_lack_their_declarations_fails_its_checks(
    registry: RegistryService, submit: Submit, manifest: Manifest
) -> None:
    """A manifest listing only its transaction type's key (as releases before declarations did) is filed
    ``checks_failed``: the failed check says in words that the type declares no product risk level and
    no amount field, and how to declare them; it never reaches a reviewer."""
    body = manifest(
        hooks=["register_transaction_types", "execute_transaction"], slots=[],
        transaction_types=["demo.order"],
        scopes={"required": {"transactions:write": "take the customer's orders"}, "optional": {}},
    )
    release = submit(manifest=body)
    assert release.state == "checks_failed"
    assert release.failed_checks == ("transaction_types.declared",)
    check = next(c for c in release.checks if c.id == "transaction_types.declared")
    assert check.message == (
        "a transaction type does not declare its product risk level or its amount field"
    )
    (detail,) = check.details
    assert detail.startswith(
        "transaction_types.demo.order: declares no product risk level and no amount field"
    )
    assert 'risk_level = "R1".."R5"' in detail
    assert release.manifest is not None  # the old form is still read
    assert release.manifest.type_keys == ("demo.order",)


def test_an_id_with_consecutive_hyphens_is_refused(submit: Submit, manifest: Manifest) -> None:
    """demo--x and demo-x would share the project fulcrum-demo-x: the registry refuses the manifest, naming
    the key and why, and the release fails its checks."""
    release = submit(
        manifest=manifest("demo--x"),
        dist="fulcrum_demo_x",
        entry_points="[fulcrum]\ndemo--x = fulcrum_demo\n",
    )
    assert release.state == "checks_failed"
    assert release.failed_checks == ("manifest.present_and_valid",)
    (detail,) = next(c for c in release.checks if c.id == "manifest.present_and_valid").details
    assert detail.startswith("id: must be 2 to 50 lowercase letters"), detail
    assert "no two hyphens in a row" in detail
    assert "city--coupons would be city-coupons" in detail
