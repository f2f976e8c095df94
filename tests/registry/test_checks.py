"""The automated checks, run as the conformance kit runs them: on a wheel file, with no database."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_registry.checks import CHECKS, CheckContext, CheckResult, PriorRelease, check_wheel

from tests.tomlish import to_toml

OWNER = CheckContext(
    publisher_id="pension-dept", publisher_kind="department", sdk_version="0.2.0", type_owners={}
)

STABLE_IDS = (
    "wheel.well_formed",
    "manifest.present_and_valid",
    "manifest.version_matches_wheel",
    "release.version_newer",
    "publisher.owns_plugin",
    "manifest.scopes_known",
    "manifest.slots_known",
    "manifest.hooks_known",
    "sdk.range_satisfiable",
    "transaction_types.declared",
    "transaction_types.unclaimed",
    "project.matches_id",
    "entry_point.matches_id",
)

BUY = {"demo.buy": {"risk_level": "R2", "amount_field": "amount_fen"}}
"""A transaction type declared as the checks want it: its product risk level and its amount field."""

Wheels = Callable[..., Path]
Manifest = Callable[..., dict[str, Any]]


def by_id(results: tuple[CheckResult, ...]) -> dict[str, CheckResult]:
    """Results keyed by check id."""
    return {r.id: r for r in results}


def failed(results: tuple[CheckResult, ...]) -> set[str]:
    """The ids of the checks that failed."""
    return {r.id for r in results if r.status == "failed"}


def test_check_ids_are_stable() -> None:
    """The check ids, and their order, are a published contract."""
    assert tuple(CHECKS) == STABLE_IDS
    assert all(spec.fix and spec.passed and spec.failed for spec in CHECKS.values())


def test_a_good_wheel_passes_every_check(wheels: Wheels) -> None:
    """A correct wheel passes all thirteen checks with the stable success messages."""
    results = check_wheel(wheels(), OWNER)
    assert [r.id for r in results] == list(STABLE_IDS)
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert by_id(results)["wheel.well_formed"].message == CHECKS["wheel.well_formed"].passed


def test_garbage_is_not_a_wheel_and_nothing_else_runs(tmp_path: Path) -> None:
    """Bytes that are not a zip fail well-formedness; every other check is skipped, not failed."""
    path = tmp_path / "fulcrum_demo-1.0.0-py3-none-any.whl"
    path.write_bytes(b"this is not a zip archive")
    results = check_wheel(path, OWNER)
    assert failed(results) == {"wheel.well_formed"}
    assert {r.status for r in results if r.id != "wheel.well_formed"} == {"skipped"}
    assert by_id(results)["wheel.well_formed"].fix == CHECKS["wheel.well_formed"].fix


def _damage(path: Path, member: str, how: str) -> Path:
    """Damage one member of a built wheel in place: flip a byte of its data, or mark its header."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if how == "crc":
        data[start + info.compress_size // 2] ^= 0xFF
    elif how == "encrypted":  # general purpose bit 0, in the central directory entry
        central = data.index(b"PK\x01\x02")
        while data[central + 46 : central + 46 + len(info.filename)] != info.filename.encode():
            central = data.index(b"PK\x01\x02", central + 4)
        data[central + 8] |= 0x01
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("member", ["dist-info/WHEEL", "dist-info/RECORD", "dist-info/METADATA", "plugin.py"])
@pytest.mark.parametrize("how", ["crc", "encrypted"])
def test_a_damaged_archive_fails_well_formed(wheels: Wheels, member: str, how: str) -> None:
    """A member that cannot be read (bad data, encrypted) fails wheel.well_formed; nothing raises."""
    results = check_wheel(_damage(wheels(), member, how), OWNER)
    assert failed(results) == {"wheel.well_formed"}
    assert any("damaged" in d for d in by_id(results)["wheel.well_formed"].details)


def _corrupt(name: str, data: bytes) -> Callable[[dict[str, bytes]], None]:
    def tamper(files: dict[str, bytes]) -> None:
        files[name] = data

    return tamper


def _edit_record(old: str, new: str) -> Callable[[dict[str, bytes]], None]:
    def tamper(files: dict[str, bytes]) -> None:
        key = "fulcrum_demo-1.0.0.dist-info/RECORD"
        files[key] = files[key].replace(old.encode(), new.encode())

    return tamper


def _drop_record_line(prefix: str) -> Callable[[dict[str, bytes]], None]:
    def tamper(files: dict[str, bytes]) -> None:
        key = "fulcrum_demo-1.0.0.dist-info/RECORD"
        lines = [ln for ln in files[key].decode().splitlines() if not ln.startswith(prefix)]
        files[key] = ("\n".join(lines) + "\n").encode()

    return tamper


@pytest.mark.parametrize(
    ("knobs", "detail"),
    [
        (
            {"tamper": _corrupt("fulcrum_demo/plugin.py", b"import os  # swapped after RECORD\n")},
            "does not match its RECORD hash",
        ),
        ({"tamper": _edit_record("sha256=", "md5=")}, "sha256 or stronger"),
        ({"tamper": _corrupt("fulcrum_demo/extra.py", b"x = 1\n")}, "not in RECORD"),
        (
            {"tamper": _drop_record_line("fulcrum_demo/__init__.py")},
            "fulcrum_demo/__init__.py is in the wheel but not in RECORD",
        ),
        ({"tamper": _corrupt("../evil.py", b"boom")}, "unsafe path"),
        ({"omit": ("WHEEL",)}, "WHEEL is missing"),
        ({"omit": ("METADATA",)}, "METADATA is missing"),
        ({"omit": ("RECORD",)}, "RECORD is missing"),
        ({"extra_files": {"other-1.0.dist-info/METADATA": b"Name: other\n"}}, "exactly one *.dist-info"),
        (
            {"tamper": _corrupt("fulcrum_demo-1.0.0.dist-info/METADATA", b"Name: evil\nVersion: 1.0.0\n")},
            "METADATA names 'evil' but the filename says 'fulcrum-demo'",
        ),
        (
            {"tamper": _corrupt("fulcrum_demo-1.0.0.dist-info/WHEEL", b"Wheel-Version: 2.0\n")},
            "Wheel-Version 1.x",
        ),
    ],
    ids=[
        "record-hash",
        "weak-hash",
        "unlisted-file",
        "unrecorded-file",
        "unsafe-path",
        "no-wheel",
        "no-metadata",
        "no-record",
        "two-dist-infos",
        "metadata-name",
        "wheel-version",
    ],
)
def test_malformed_wheels_fail_well_formed(wheels: Wheels, knobs: dict[str, Any], detail: str) -> None:
    """Each way a wheel can be broken fails wheel.well_formed with a detail naming the file."""
    result = by_id(check_wheel(wheels(**knobs), OWNER))["wheel.well_formed"]
    assert result.status == "failed"
    assert result.message == CHECKS["wheel.well_formed"].failed
    assert any(detail in d for d in result.details), result.details


def test_record_size_mismatch_is_caught(wheels: Wheels) -> None:
    """A RECORD line whose size is wrong fails even when the hash is right."""

    def tamper(files: dict[str, bytes]) -> None:
        key = "fulcrum_demo-1.0.0.dist-info/RECORD"
        lines = files[key].decode().splitlines()
        lines = [
            ln.rsplit(",", 1)[0] + ",999" if ln.startswith("fulcrum_demo/plugin.py") else ln for ln in lines
        ]
        files[key] = ("\n".join(lines) + "\n").encode()

    result = by_id(check_wheel(wheels(tamper=tamper), OWNER))["wheel.well_formed"]
    assert any("does not match RECORD size 999" in d for d in result.details)


def test_record_listing_a_missing_file_is_caught(wheels: Wheels) -> None:
    """RECORD naming a file the archive lacks fails well-formedness."""

    def tamper(files: dict[str, bytes]) -> None:
        del files["fulcrum_demo/__init__.py"]

    result = by_id(check_wheel(wheels(tamper=tamper), OWNER))["wheel.well_formed"]
    assert any("does not contain it" in d for d in result.details)


def test_a_second_manifest_deeper_in_the_wheel_fails(wheels: Wheels, manifest: Manifest) -> None:
    """The host reads the first fulcrum-plugin.toml RECORD lists, at any depth: a second one (here
    claiming more slots) would run instead of the reviewed one, so the wheel is refused."""
    hidden = to_toml(manifest(slots=["home.notice/v1", "home.banner/v1"])).encode()
    results = check_wheel(wheels(extra_files={"fulcrum_demo/sub/fulcrum-plugin.toml": hidden}), OWNER)
    assert failed(results) == {"manifest.present_and_valid"}
    detail = by_id(results)["manifest.present_and_valid"].details[0]
    assert "2 fulcrum-plugin.toml files" in detail
    assert "fulcrum_demo/sub/fulcrum-plugin.toml" in detail


def test_missing_manifest_fails_and_skips_what_depends_on_it(wheels: Wheels) -> None:
    """No fulcrum-plugin.toml: present_and_valid fails; manifest-based checks are skipped."""
    results = check_wheel(wheels(manifest=None), OWNER)
    assert failed(results) == {"manifest.present_and_valid"}
    skipped = {r.id for r in results if r.status == "skipped"}
    assert skipped == set(STABLE_IDS) - {
        "wheel.well_formed",
        "manifest.present_and_valid",
        "release.version_newer",
    }
    assert by_id(results)["manifest.version_matches_wheel"].message.startswith("not run:")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ('id = "demo"\n[broken', "not valid TOML"),
        ('id = "demo"\n', "required"),
        (None, "kind"),
    ],
    ids=["bad-toml", "missing-keys", "bad-kind"],
)
def test_invalid_manifest_fails_naming_the_key(
    wheels: Wheels, manifest: Manifest, text: str | None, detail: str
) -> None:
    """An unreadable or invalid manifest fails present_and_valid, and the detail says where."""
    body = text if text is not None else manifest(kind="bank")
    result = by_id(check_wheel(wheels(manifest=body), OWNER))["manifest.present_and_valid"]
    assert result.status == "failed"
    assert detail in result.details[0]


def test_manifest_version_that_differs_from_the_wheel_fails_only_that_check(
    wheels: Wheels, manifest: Manifest
) -> None:
    """A manifest claiming 9.9.9 inside a 1.0.0 wheel fails version_matches_wheel and nothing else."""
    results = check_wheel(wheels(manifest=manifest(version="9.9.9")), OWNER)
    assert failed(results) == {"manifest.version_matches_wheel"}
    assert "fulcrum-plugin.toml says 9.9.9" in by_id(results)["manifest.version_matches_wheel"].details[0]


def test_metadata_version_that_differs_from_the_filename_fails(wheels: Wheels) -> None:
    """METADATA saying 1.0.1 in a file named 1.0.0 fails version_matches_wheel."""
    results = check_wheel(wheels(metadata_version="1.0.1"), OWNER)
    assert "manifest.version_matches_wheel" in failed(results)


@pytest.mark.parametrize(
    ("knobs", "detail"),
    [
        ({"manifest_version": "1.0"}, "fulcrum-plugin.toml says '1.0', METADATA says '1.0.0'"),
        ({"version": "1.0.0rc1", "metadata_version": "1.0.0-rc1"}, "'1.0.0-rc1' is not normalised"),
    ],
    ids=["manifest-spelling", "metadata-spelling"],
)
def test_versions_equal_only_under_pep440_fail(
    wheels: Wheels, manifest: Manifest, knobs: dict[str, str], detail: str
) -> None:
    """The host matches and loads a plugin by METADATA's exact version text, so the spellings must agree."""
    version = knobs.pop("manifest_version", None)
    body = manifest(version=version) if version else manifest()
    results = check_wheel(wheels(manifest=body, **knobs), OWNER)
    assert failed(results) == {"manifest.version_matches_wheel"}
    assert any(detail in d for d in by_id(results)["manifest.version_matches_wheel"].details)


@pytest.mark.parametrize(
    ("prior", "ok"),
    [
        ((PriorRelease("1.0.0", "approved"),), False),
        ((PriorRelease("1.2.0", "rejected"),), False),
        ((PriorRelease("0.9.0", "approved"), PriorRelease("1.0.0", "retired")), False),
        ((PriorRelease("1.0.0", "checks_failed"),), True),
        ((PriorRelease("0.9.0", "approved"), PriorRelease("1.0.0rc1", "in_review")), True),
        ((), True),
    ],
    ids=["same", "older-than-rejected", "same-as-retired", "failed-checks-ignored", "newer-than-rc", "first"],
)
def test_version_must_be_newer_than_every_earlier_release(
    wheels: Wheels, prior: tuple[PriorRelease, ...], ok: bool
) -> None:
    """1.0.0 passes only when no earlier release (other than a checks_failed one) is as new."""
    ctx = CheckContext(
        publisher_id="pension-dept", publisher_kind="department", prior_releases=prior, sdk_version="0.2.0"
    )
    result = by_id(check_wheel(wheels(), ctx))["release.version_newer"]
    assert result.passed is ok
    if not ok:
        assert result.details
        assert "is not older" in result.details[0]


@pytest.mark.parametrize(
    ("ctx", "detail"),
    [
        (CheckContext(publisher_id="fund-partner"), "the submitter is 'fund-partner'"),
        (
            CheckContext(publisher_id="pension-dept", plugin_owner="branch-0755"),
            "belongs to publisher 'branch-0755'",
        ),
        (CheckContext(publisher_id="pension-dept", publisher_kind="partner"), "the publisher is a 'partner'"),
    ],
    ids=["foreign-manifest", "foreign-plugin-id", "kind-escalation"],
)
def test_publisher_must_own_the_plugin(wheels: Wheels, ctx: CheckContext, detail: str) -> None:
    """A foreign publisher, a taken plugin id or a kind the publisher is not all fail owns_plugin."""
    result = by_id(check_wheel(wheels(), ctx))["publisher.owns_plugin"]
    assert result.status == "failed"
    assert any(detail in d for d in result.details), result.details


def test_ownership_is_skipped_without_a_publisher(wheels: Wheels) -> None:
    """The conformance kit may not know the publisher: the check is skipped, not passed."""
    result = by_id(check_wheel(wheels(), CheckContext(sdk_version="0.2.0")))["publisher.owns_plugin"]
    assert result.status == "skipped"
    assert not result.passed


@pytest.mark.parametrize(
    ("overrides", "check", "detail"),
    [
        (
            {"scopes": {"required": {"slot:home.notice": "notices", "accounts:write": "move money"}}},
            "manifest.scopes_known",
            "scopes.required.accounts:write: unknown scope",
        ),
        (
            {
                "scopes": {
                    "required": {"slot:home.notice": "notices"},
                    "optional": {"registry:review": "approve myself"},
                }
            },
            "manifest.scopes_known",
            "staff scopes cannot be granted",
        ),
        (
            {"transaction_types": BUY, "hooks": ["home_slot_offers", "execute_transaction"]},
            "manifest.scopes_known",
            "transactions:write",
        ),
        ({"slots": ["home.footer/v1"]}, "manifest.slots_known", "unknown slot 'home.footer/v1'"),
        (
            {"slots": ["home.notice/v1", "home.banner/v1"]},
            "manifest.slots_known",
            "needs scope 'slot:home.banner'",
        ),
        ({"slots": []}, "manifest.slots_known", "no slot is declared"),
        ({"hooks": ["home_slot_offer"]}, "manifest.hooks_known", "unknown hook 'home_slot_offer'"),
        (
            {
                "transaction_types": BUY,
                "scopes": {"required": {"slot:home.notice": "notices", "transactions:write": "buy products"}},
            },
            "manifest.hooks_known",
            "execute_transaction",
        ),
        (
            {"oauth": {"redirect_uris": ["https://plugin.example.com/*"]}},
            "manifest.present_and_valid",
            "oauth.redirect_uris.0: 'https://plugin.example.com/*' must be exact: no wildcards",
        ),
    ],
    ids=[
        "unknown-scope",
        "staff-scope",
        "tx-without-scope",
        "unknown-slot",
        "slot-without-scope",
        "offers-without-slot",
        "unknown-hook",
        "tx-without-hook",
        "oauth-wildcard",
    ],
)
def test_semantic_problems_fail_the_right_check(
    wheels: Wheels, manifest: Manifest, overrides: dict[str, Any], check: str, detail: str
) -> None:
    """Each semantic problem the SDK finds fails exactly the check that owns it."""
    results = check_wheel(wheels(manifest=manifest(**overrides)), OWNER)
    assert failed(results) == {check}
    assert any(detail in d for d in by_id(results)[check].details), by_id(results)[check].details


@pytest.mark.parametrize(
    ("sdk", "ok"),
    [(">=2", False), (">=0.1,<0.2", False), ("<0.2", False), ("~=0.2", True), (">=0.2.0,<0.3", True)],
)
def test_sdk_range_must_include_the_platform_version(
    wheels: Wheels, manifest: Manifest, sdk: str, ok: bool
) -> None:
    """The manifest's SDK range is checked against the platform's fulcrum-sdk version; a refusal names
    both and points at the SDK's changelog, since a 0.1 plugin must change more than its range."""
    result = by_id(check_wheel(wheels(manifest=manifest(sdk=sdk)), OWNER))["sdk.range_satisfiable"]
    assert result.passed is ok
    if not ok:
        assert result.details == (
            f"sdk: needs fulcrum-sdk {sdk} but the platform runs fulcrum-sdk 0.2.0; "
            "see the SDK's CHANGELOG (sdk/CHANGELOG.md) for what changed",
        )
        assert "CHANGELOG" in CHECKS["sdk.range_satisfiable"].fix


def test_sdk_range_defaults_to_the_installed_sdk(wheels: Wheels, manifest: Manifest) -> None:
    """Without an explicit version the installed fulcrum-sdk is the platform's."""
    ctx = CheckContext(publisher_id="pension-dept", publisher_kind="department")
    assert (
        by_id(check_wheel(wheels(manifest=manifest(sdk=">=1000")), ctx))["sdk.range_satisfiable"].status
        == "failed"
    )
    assert by_id(check_wheel(wheels(), ctx))["sdk.range_satisfiable"].passed


@pytest.mark.parametrize(
    ("entry_points", "found", "module"),
    [
        (None, "none", "fulcrum_demo"),
        ("[console_scripts]\ndemo = fulcrum_demo:main\n", "none", "fulcrum_demo"),
        ("[fulcrum]\ndemo-plugin = fulcrum_demo.plugin\n", "demo-plugin", "fulcrum_demo.plugin"),
        (
            "[fulcrum]\ndemo = fulcrum_demo.plugin\nother = fulcrum_demo.other\n",
            "demo, other",
            "fulcrum_demo",
        ),
    ],
    ids=["no-file", "other-group", "wrong-name", "two-entries"],
)
def test_entry_point_must_be_exactly_the_plugin_id(
    wheels: Wheels, entry_points: str | None, found: str, module: str
) -> None:
    """The `fulcrum` group must hold exactly one entry point named after the plugin id; the fix is the
    exact line to write: the manifest's id and the module a lone misnamed entry point already names,
    else the package the manifest was found in."""
    result = by_id(check_wheel(wheels(entry_points=entry_points), OWNER))["entry_point.matches_id"]
    assert result.status == "failed"
    assert result.message == CHECKS["entry_point.matches_id"].failed
    assert result.details == (f"expected exactly 'demo', found: {found}",)
    assert result.fix == f'declare `[project.entry-points.fulcrum]` with the one line `"demo" = "{module}"`'


@pytest.mark.parametrize(
    ("dist", "project"),
    [
        ("fulcrum_wealth_checkup", "fulcrum-wealth-checkup"),
        ("demo", "demo"),
        ("fulcrum_demo2", "fulcrum-demo2"),
    ],
    ids=["another-plugins-project", "no-prefix", "near-miss"],
)
def test_the_project_must_be_named_after_the_plugin_id(wheels: Wheels, dist: str, project: str) -> None:
    """An installer finds a plugin by its project's name: plugin `demo` ships only as fulcrum-demo, else
    approving it would put its wheel in another project (another plugin's, installed in its place)."""
    result = by_id(check_wheel(wheels(dist=dist), OWNER))["project.matches_id"]
    assert result.status == "failed"
    assert result.message == CHECKS["project.matches_id"].failed
    assert result.details == (f"the wheel's project is {project!r}, plugin 'demo' must be 'fulcrum-demo'",)
    assert result.fix == (
        'name the project `name = "fulcrum-demo"` under [project] in pyproject.toml, then rebuild'
    )


def test_the_project_name_is_compared_as_installers_compare_it(wheels: Wheels, manifest: Manifest) -> None:
    """Case, dots and underscores do not matter (PEP 503): Fulcrum.Demo is fulcrum-demo."""
    assert by_id(check_wheel(wheels(dist="Fulcrum.Demo"), OWNER))["project.matches_id"].passed


def test_every_failure_is_listed_not_just_the_first(wheels: Wheels, manifest: Manifest) -> None:
    """A wheel wrong in several ways reports all of them at once."""
    bad = manifest(hooks=["nope"], sdk=">=5", slots=["home.footer/v1"], publisher="fund-partner")
    results = check_wheel(wheels(manifest=bad, entry_points=None), OWNER)
    assert failed(results) == {
        "publisher.owns_plugin",
        "manifest.slots_known",
        "manifest.hooks_known",
        "sdk.range_satisfiable",
        "entry_point.matches_id",
    }


def test_record_is_still_verified_when_a_required_file_is_missing(wheels: Wheels) -> None:
    """A missing WHEEL does not hide a RECORD mismatch: both are listed."""
    tamper = _corrupt("fulcrum_demo/plugin.py", b"changed")
    details = by_id(check_wheel(wheels(omit=("WHEEL",), tamper=tamper), OWNER))["wheel.well_formed"].details
    assert any("WHEEL is missing" in d for d in details)
    assert any("does not match its RECORD hash" in d for d in details)


def test_a_transaction_type_another_plugin_declares_is_refused(wheels: Wheels, manifest: Manifest) -> None:
    """A plugin may not declare a transaction type another plugin's release already declares (the
    host runs one owner per key, so the second could be sent the first one's orders)."""
    declared = {"risk_level": "R1", "amount_field": "amount_fen"}
    keys = ["demo.order", "pension.personal_contribution"]
    mine = manifest(transaction_types=dict.fromkeys(keys, declared))
    ctx = CheckContext(
        publisher_id="pension-dept", publisher_kind="department", sdk_version="0.2.0",
        type_owners={"pension.personal_contribution": "pension"},
    )
    result = by_id(check_wheel(wheels(manifest=mine), ctx))["transaction_types.unclaimed"]
    assert result.status == "failed"
    assert result.details == ("'pension.personal_contribution' is declared by plugin 'pension'",)
    assert result.fix is not None
    assert "<plugin>.<action>" in result.fix


def test_without_a_registry_the_transaction_type_check_is_skipped(wheels: Wheels) -> None:
    """The conformance kit has no registry: the check says it did not run, and fails nothing."""
    ctx = CheckContext(publisher_id="pension-dept", publisher_kind="department", sdk_version="0.2.0")
    result = by_id(check_wheel(wheels(), ctx))["transaction_types.unclaimed"]
    assert result.status == "skipped"


def test_a_campaign_hook_passes_the_hook_check(wheels: Wheels, manifest: Manifest) -> None:
    """``home_slot_campaigns`` is a hook the SDK defines: a manifest listing it (with its slots) passes
    every check; listing it without slots fails ``manifest.slots_known``, as for ``home_slot_offers``."""
    both = manifest(hooks=["home_slot_offers", "home_slot_campaigns"])
    assert failed(check_wheel(wheels(manifest=both), OWNER)) == set()
    bare = manifest(hooks=["home_slot_campaigns"], slots=[])
    results = check_wheel(wheels(manifest=bare), OWNER)
    assert failed(results) == {"manifest.slots_known"}
    assert any("home_slot_campaigns" in d for d in by_id(results)["manifest.slots_known"].details)


_TYPED = {
    "hooks": ["register_transaction_types", "execute_transaction"],
    "slots": [],
    "scopes": {"required": {"transactions:write": "take the customer's orders"}, "optional": {}},
}


@pytest.mark.parametrize(
    ("declared", "words"),
    [
        (
            ["demo.buy"],
            "transaction_types.demo.buy: declares no product risk level and no amount field (only the key "
            "is listed)",
        ),
        (
            {"demo.buy": {"amount_field": "amount_fen"}},
            "transaction_types.demo.buy.risk_level: required: the product risk level R1–R5",
        ),
        (
            {"demo.buy": {"risk_level": "R3"}},
            "transaction_types.demo.buy.amount_field: required: the parameter holding the amount in fen",
        ),
        (
            {"demo.buy": {"risk_level": "R3", "moves_money": False, "amount_field": "amount_fen"}},
            "transaction_types.demo.buy.moves_money: false, but amount_field names an amount",
        ),
        (
            {"demo.buy": {"product_risks": {"F-1": "R2"}, "amount_field": "amount_fen"}},
            "transaction_types.demo.buy.product_field: required with product_risks",
        ),
    ],
    ids=["keys-only", "no-risk-level", "no-amount-field", "contradiction", "products-without-field"],
)
def test_a_transaction_type_must_declare_its_risk_and_amount(
    wheels: Wheels, manifest: Manifest, declared: Any, words: str
) -> None:
    """A type whose product risk level or amount field the manifest does not state fails
    ``transaction_types.declared`` with a detail naming the key and what is missing: reviewers approve
    them from the manifest, so a release without them never reaches review."""
    results = check_wheel(wheels(manifest=manifest(transaction_types=declared, **_TYPED)), OWNER)
    assert failed(results) == {"transaction_types.declared"}
    result = by_id(results)["transaction_types.declared"]
    assert any(d.startswith(words) for d in result.details), result.details
    assert result.fix is not None
    assert "risk_level" in result.fix
    assert "moves_money = false" in result.fix


@pytest.mark.parametrize(
    "declared",
    [
        {"demo.buy": {"risk_level": "R2", "amount_field": "amount_fen"}},
        {"demo.buy": {"risk_level": "R1", "moves_money": False}},
        {"demo.buy": {"product_field": "fund", "product_risks": {"F-1": "R2", "F-2": "R4"},
                      "amount_field": "amount_fen"}},
    ],
    ids=["fixed", "no-money", "per-product"],
)
def test_declared_transaction_types_pass(wheels: Wheels, manifest: Manifest, declared: Any) -> None:
    """A fixed level, a type stating it moves no money, or each product's level: all pass."""
    results = check_wheel(wheels(manifest=manifest(transaction_types=declared, **_TYPED)), OWNER)
    assert by_id(results)["transaction_types.declared"].passed, by_id(results)["transaction_types.declared"]
    assert failed(results) == set()
