"""Manifest model and loaders: installed distributions, editable installs and wheels, never importing."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import (
    ID_WORDS,
    Manifest,
    declaration_problems,
    manifest_from_builtins,
    manifest_from_distribution,
    manifest_from_wheel,
    parse_manifest,
    semantic_problems,
)

GOOD = """
id = "demo-plugin"
publisher = "test-bank"
kind = "branch"
sdk = ">=0.1,<1"
hooks = ["home_slot_offers", "search"]
slots = ["home.banner/v1"]
name = { "zh-CN" = "演示插件", en = "Demo plugin" }
description = { "zh-CN" = "用于测试", en = "For tests" }
owner = { name = "Demo Team", email = "demo@example.com" }

[scopes.required]
"slot:home.banner" = "shows a banner on the home page"
"search:contribute" = "answers searches"

[scopes.optional]
"location:city" = "localises offers by city"
"""

BOOM = "raise RuntimeError('the plugin must not be imported to read its manifest')\n"


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_parse_valid_manifest_fills_the_version() -> None:
    """A valid manifest decodes; the distribution's version fills ``version``."""
    manifest = parse_manifest(GOOD, file="fulcrum-plugin.toml", version="2.0.1")
    assert manifest.id == "demo-plugin"
    assert manifest.version == "2.0.1"
    assert manifest.scopes.all == frozenset({"slot:home.banner", "search:contribute", "location:city"})
    assert semantic_problems(manifest) == []


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"id": "city--coupons"}, "id", f"must be {ID_WORDS}"),
        (
            {"name": {"zh-CN": "演示\u202e插件", "en": "Demo"}},
            "name.zh-CN",
            "U+202E RIGHT-TO-LEFT OVERRIDE at index 2 is not allowed in display text",
        ),
        ({"id": "platform"}, "id", "'platform' is reserved: the host names its own content or its own "
         "stalls so"),
        ({"kind": "bank"}, "kind", "'bank' is not one of: department, branch, partner"),
    ],
)
def test_a_manifest_kept_as_data_is_judged_by_todays_rules(
    changes: dict[str, object], key: str, problem: str
) -> None:
    """What a registry stored under older rules is read with the key and the problem in words, as a
    manifest file would be; one that passes them reads back equal."""
    import msgspec

    stored = msgspec.to_builtins(parse_manifest(GOOD, file="fulcrum-plugin.toml", version="1.0.0"))
    assert manifest_from_builtins(stored, file="release 7") == parse_manifest(
        GOOD, file="fulcrum-plugin.toml", version="1.0.0"
    )
    with pytest.raises(ManifestError) as refused:
        manifest_from_builtins({**stored, **changes}, file="release 7")
    assert (refused.value.file, refused.value.key, refused.value.problem) == ("release 7", key, problem)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            _replace(GOOD, 'owner = { name = "Demo Team", email = "demo@example.com" }', ""),
            "owner",
            "required key is missing",
        ),
        (_replace(GOOD, 'kind = "branch"', 'kind = "alien"'), "kind",
         "'alien' is not one of: department, branch, partner"),
        (
            _replace(GOOD, '"search:contribute" = "answers searches"', '"search:contribute" = "x"'),
            "scopes.required",
            "must be at least 3 characters",
        ),
        (
            _replace(GOOD, 'id = "demo-plugin"', 'id = "Demo Plugin!"'),
            "id",
            "must be 2 to 50 lowercase letters, digits and hyphens, starting with a letter",
        ),
        (_replace(GOOD, 'publisher = "test-bank"', 'publisher = "-bank"'), "publisher", "lowercase letters"),
        # a wheel's project name folds '--' into '-': two ids would share one project (one would install
        # as the other), so an id has no two hyphens in a row, and the error says why
        (_replace(GOOD, 'id = "demo-plugin"', 'id = "demo--plugin"'), "id",
         "no two hyphens in a row, such as city-coupons (a wheel's project name folds '--' into one hyphen: "
         "city--coupons would be city-coupons)"),
        (_replace(GOOD, 'publisher = "test-bank"', 'publisher = "test--bank"'), "publisher",
         "no two hyphens in a row"),
        # $ alone matches before a last newline in Python's re: an id or publisher of its own, alike in print
        (_replace(GOOD, 'id = "demo-plugin"', 'id = "demo-plugin\\n"'), "id", "lowercase letters"),
        (_replace(GOOD, 'publisher = "test-bank"', 'publisher = "test-bank\\n"'), "publisher",
         "lowercase letters"),
        (_replace(GOOD, 'email = "demo@example.com"', 'email = "demo@example.com\\n"'), "owner.email",
         "must be an e-mail address"),
        (
            _replace(GOOD, 'email = "demo@example.com"', 'email = "demo at example"'),
            "owner.email",
            "must be an e-mail address such as dev@partner.example",
        ),
        (_replace(GOOD, 'sdk = ">=0.1,<1"', 'sdk = "0.1"'), "sdk", "must be version specifiers such as"),
        ('homepage = "https://example.com"\n' + GOOD, None, "homepage"),
        ('slot = ["home.banner/v1"]\n' + GOOD, "slot", "slot: is not a key here (the keys are: id, "),
        ('slot = ["home.banner/v1"]\n' + GOOD, "slot", "; did you mean slots?"),
        (_replace(GOOD, 'sdk = ">=0.1,<1"', "sdk = 1"), "sdk", "sdk: must be text"),
    ],
)
def test_invalid_manifest_names_file_key_and_problem(text: str, key: str | None, problem: str) -> None:
    """Validation errors carry the file, the offending key and what is wrong with it."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, file="pkg/fulcrum-plugin.toml")
    err = info.value
    assert err.file == "pkg/fulcrum-plugin.toml"
    if key is not None:
        assert err.key is not None
        assert err.key.startswith(key)
    assert problem in str(err)
    assert "regex" not in str(err)  # its author wrote TOML: a pattern is said in words
    assert str(err).startswith("pkg/fulcrum-plugin.toml")


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('"zh-CN" = "演示插件"', '"zh-CN" = "演示\u2066插件"', "name.zh-CN",
         "U+2066 LEFT-TO-RIGHT ISOLATE at index 2 is not allowed in display text"),
        ('"slot:home.banner" = "shows a banner on the home page"',
         '"slot:home.banner" = "shows a banner\u2066 on the home page"', "scopes.required.slot:home.banner",
         "U+2066 LEFT-TO-RIGHT ISOLATE at index 14 is not allowed in display text"),
        ('"location:city" = "localises offers by city"', '"location:city" = "by city\u202e"',
         "scopes.optional.location:city", "U+202E RIGHT-TO-LEFT OVERRIDE at index 7"),
        ('en = "For tests"', 'en = "For\ttests"', "description.en", "U+0009 CHARACTER TABULATION at index 3"),
        ('en = "Demo plugin"', 'en = "Demo\\nplugin"', "name.en", "U+000A LINE FEED at index 4"),
        ('name = "Demo Team"', 'name = "Demo\u2028Team"', "owner.name", "U+2028 LINE SEPARATOR at index 4"),
    ],
)
def test_display_text_that_could_spoof_the_consent_page_is_refused_naming_the_key(
    old: str, new: str, key: str, problem: str
) -> None:
    """The plugin's name and each scope's reason are read on the consent page, its description and
    owner by a reviewer: a bidi control, a control character or a line separator there is refused,
    naming the key and the character, wherever the manifest is read (the registry, the host, the
    harness)."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(_replace(GOOD, old, new), file="m.toml")
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"m.toml: {key}: U+")


def test_a_description_may_hold_paragraphs_and_a_name_emoji_and_marks() -> None:
    """A line feed in a description, ZWJ emoji and an LRM in a name are ordinary text."""
    text = _replace(GOOD, 'en = "For tests"', 'en = """For tests.\nSecond paragraph."""')
    text = _replace(text, '"zh-CN" = "演示插件"', '"zh-CN" = "演示 👩\u200d💻\u200e插件"')
    manifest = parse_manifest(text, file="m.toml")
    assert manifest.description.en == "For tests.\nSecond paragraph."
    assert manifest.name.zh_CN == "演示 👩\u200d💻\u200e插件"


def test_not_toml_is_reported_with_the_file() -> None:
    """Text that is not TOML names the file and says so."""
    with pytest.raises(ManifestError, match=r"^a\.toml: not valid TOML"):
        parse_manifest("id = = 1", file="a.toml")


def test_bytes_that_are_not_utf8_are_reported_with_the_file() -> None:
    """A manifest in another encoding is a ManifestError naming the file, not a UnicodeDecodeError."""
    with pytest.raises(ManifestError, match=r"^a\.toml: not UTF-8 text"):
        parse_manifest('id = "caf\xe9"'.encode("latin-1"), file="a.toml")


def test_the_platform_id_is_reserved() -> None:
    """``platform`` names the host's own default content on the home page: no plugin may take it."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(GOOD.replace('id = "demo-plugin"', 'id = "platform"'), file="m.toml")
    assert info.value.key == "id"


def test_version_mismatch_is_refused() -> None:
    """A manifest stating a version other than the distribution's is an error on key ``version``."""
    with pytest.raises(ManifestError) as info:
        parse_manifest('version = "9.9.9"\n' + GOOD, file="m.toml", version="1.0.0")
    assert info.value.key == "version"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            '"search:contribute" = "answers searches"',
            '"mind:read" = "reads minds"',
            "scopes.required.mind:read",
        ),
        (
            '"search:contribute" = "answers searches"',
            '"platform:read" = "peeks at ops"',
            "scopes.required.platform:read",
        ),
        ('slots = ["home.banner/v1"]', 'slots = ["home.banner/v1", "home.footer/v1"]', "slots.1"),
        ('slots = ["home.banner/v1"]', 'slots = ["home.banner/v1", "home.popup/v1"]', "slots.1"),
        ('hooks = ["home_slot_offers", "search"]', 'hooks = ["home_slot_offers", "serch"]', "hooks.1"),
        ('slots = ["home.banner/v1"]', "slots = []", "slots"),
        (
            'slots = ["home.banner/v1"]',
            'slots = ["home.banner/v1"]\ntransaction_types = ["demo.buy"]',
            "transaction_types",
        ),
    ],
)
def test_semantic_problems_name_the_key(old: str, new: str, key: str) -> None:
    """Unknown or ungrantable scopes, unknown slots and hooks, and missing companions are each named."""
    manifest = parse_manifest(_replace(GOOD, old, new), file="m.toml")
    assert key in [p.key for p in semantic_problems(manifest)]


_DECLARED = """
[transaction_types."demo.buy"]
product_field = "fund"
amount_field = "amount_fen"

[transaction_types."demo.buy".product_risks]
F-1 = "R2"
F-2 = "R4"

[transaction_types."demo.note"]
risk_level = "R1"
moves_money = false
"""


def test_transaction_types_are_declared_as_tables_and_the_old_list_is_still_read() -> None:
    """Each type's table carries its product risk and amount field; a manifest of an earlier release,
    listing only the keys, still parses (the registry keeps such manifests) with no declaration, which
    :func:`declaration_problems` names."""
    manifest = parse_manifest(GOOD + _DECLARED, file="m.toml")
    assert manifest.type_keys == ("demo.buy", "demo.note")
    buy, note = manifest.declaration("demo.buy"), manifest.declaration("demo.note")
    assert buy is not None
    assert note is not None
    assert (buy.product_field, buy.product_risks, buy.amount_field) == ("fund", {"F-1": "R2", "F-2": "R4"},
                                                                         "amount_fen")
    assert (note.risk_level, note.moves_money, note.amount_field) == ("R1", False, None)
    assert declaration_problems(manifest) == []
    listed = 'slots = ["home.banner/v1"]\ntransaction_types = ["demo.buy"]'
    old = parse_manifest(_replace(GOOD, 'slots = ["home.banner/v1"]', listed), file="m.toml")
    assert old.type_keys == ("demo.buy",)
    assert old.declaration("demo.buy") is None
    assert [p.key for p in declaration_problems(old)] == ["transaction_types.demo.buy"]


def test_a_risk_level_outside_r1_to_r5_is_refused_naming_the_key() -> None:
    """A declared level must be R1–R5: the error names the key it is under."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(GOOD + _DECLARED.replace('"R4"', '"R9"'), file="m.toml")
    assert "transaction_types.*.product_risks" in str(info.value)
    assert "R9" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('amount_field = "amount_fen"', 'amount_field = "amount-fen"', "transaction_types.*.amount_field"),
        ('product_field = "fund"', 'product_field = "1fund"', "transaction_types.*.product_field"),
    ],
)
def test_a_parameter_name_not_of_its_shape_is_refused_in_words(old: str, new: str, key: str) -> None:
    """A declared parameter's name said msgspec's regular expression; it says what a name is made of."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(GOOD + _DECLARED.replace(old, new), file="m.toml")
    assert info.value.key == key
    assert info.value.problem == (
        "must be a parameter's name: ASCII letters, digits and '_', not starting with a digit, such as "
        "amount_fen"
    )


# --- loaders ---------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for fake installed distributions; their modules are forgotten after."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)


def _dist(
    root: Path, package: str, *, manifest: str | None, record_package: bool, version: str = "1.4.0"
) -> str:
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text(BOOM)
    if manifest is not None:
        (pkg / "fulcrum-plugin.toml").write_text(manifest, encoding="utf-8")
    info = root / f"{package}-{version}.dist-info"
    info.mkdir()
    dist_name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[fulcrum]\ndemo-plugin = {package}\n")
    files = [f"{info.name}/METADATA", f"{info.name}/entry_points.txt", f"{info.name}/RECORD"]
    if record_package:
        files += [f"{package}/__init__.py", f"{package}/fulcrum-plugin.toml"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    importlib.invalidate_caches()
    return dist_name


def test_installed_distribution_manifest_is_read_without_import(site: Path) -> None:
    """A regular install (package files in RECORD) yields the manifest with the distribution's version."""
    name = _dist(site, "sdk_installed_demo", manifest=GOOD, record_package=True)
    manifest = manifest_from_distribution(importlib.metadata.distribution(name))
    assert isinstance(manifest, Manifest)
    assert (manifest.id, manifest.version) == ("demo-plugin", "1.4.0")
    assert "sdk_installed_demo" not in sys.modules


def test_editable_install_manifest_is_found_beside_the_package(site: Path) -> None:
    """An editable install (no package files in RECORD) is resolved through the entry point's package."""
    name = _dist(site, "sdk_editable_demo", manifest=GOOD, record_package=False)
    manifest = manifest_from_distribution(importlib.metadata.distribution(name))
    assert manifest.version == "1.4.0"
    assert "sdk_editable_demo" not in sys.modules


def test_distribution_without_manifest_names_the_distribution(site: Path) -> None:
    """A distribution shipping no manifest is an error naming it."""
    name = _dist(site, "sdk_bare_demo", manifest=None, record_package=False)
    with pytest.raises(ManifestError, match=r"sdk-bare-demo.*no fulcrum-plugin\.toml"):
        manifest_from_distribution(importlib.metadata.distribution(name))


def test_invalid_manifest_in_a_distribution_names_the_file_and_key(site: Path) -> None:
    """A bad manifest inside an installed distribution names the distribution's file and the key."""
    name = _dist(
        site, "sdk_badkey_demo", manifest=_replace(GOOD, 'kind = "branch"', "kind = 3"), record_package=True
    )
    with pytest.raises(ManifestError) as info:
        manifest_from_distribution(importlib.metadata.distribution(name))
    assert "fulcrum-plugin.toml" in info.value.file
    assert info.value.key == "kind"


def _wheel(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


_METADATA = "Metadata-Version: 2.1\nName: demo-plugin\nVersion: 3.1.4\n"


def test_wheel_manifest_is_read_without_unpacking(tmp_path: Path) -> None:
    """The manifest comes out of the wheel with the version from its METADATA."""
    wheel = _wheel(
        tmp_path / "demo_plugin-3.1.4-py3-none-any.whl",
        {
            "demo_plugin/__init__.py": BOOM,
            "demo_plugin/fulcrum-plugin.toml": GOOD,
            "demo_plugin-3.1.4.dist-info/METADATA": _METADATA,
        },
    )
    manifest = manifest_from_wheel(wheel)
    assert (manifest.id, manifest.version) == ("demo-plugin", "3.1.4")


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"demo_plugin/__init__.py": BOOM, "demo_plugin-3.1.4.dist-info/METADATA": _METADATA}, "found 0"),
        (
            {
                "a/fulcrum-plugin.toml": GOOD,
                "b/fulcrum-plugin.toml": GOOD,
                "demo_plugin-3.1.4.dist-info/METADATA": _METADATA,
            },
            "found 2",
        ),
        ({"demo_plugin/fulcrum-plugin.toml": GOOD}, "METADATA"),
        ({"demo_plugin/fulcrum-plugin.toml": GOOD, "x-1.dist-info/METADATA": "Name: x\n"}, "no Version"),
    ],
)
def test_malformed_wheels_are_explained(tmp_path: Path, members: dict[str, str], problem: str) -> None:
    """Wheels without exactly one manifest, or without usable METADATA, are errors naming the wheel."""
    wheel = _wheel(tmp_path / "demo.whl", members)
    with pytest.raises(ManifestError, match=problem) as info:
        manifest_from_wheel(wheel)
    assert info.value.file == str(wheel)


def test_invalid_manifest_in_a_wheel_names_member_and_key(tmp_path: Path) -> None:
    """A bad manifest in a wheel is reported as wheel!member with the key."""
    wheel = _wheel(
        tmp_path / "demo.whl",
        {
            "demo_plugin/fulcrum-plugin.toml": _replace(
                GOOD, 'publisher = "test-bank"', 'publisher = "Test Bank"'
            ),
            "demo_plugin-3.1.4.dist-info/METADATA": _METADATA,
        },
    )
    with pytest.raises(ManifestError) as info:
        manifest_from_wheel(wheel)
    assert info.value.file.endswith("demo.whl!demo_plugin/fulcrum-plugin.toml")
    assert info.value.key == "publisher"


def test_not_a_wheel_at_all(tmp_path: Path) -> None:
    """A file that is not a zip archive is reported as unreadable."""
    bogus = tmp_path / "bogus.whl"
    bogus.write_bytes(b"definitely not a zip")
    with pytest.raises(ManifestError, match="cannot read the wheel"):
        manifest_from_wheel(bogus)


def test_only_the_top_level_packages_manifest_counts(site: Path) -> None:
    """A manifest deeper in the package, even listed first in RECORD, is never the plugin's: the host
    reads the one the registry reviewed (``<package>/fulcrum-plugin.toml``)."""
    name = _dist(site, "sdk_deep_demo", manifest=GOOD, record_package=True)
    hidden = site / "sdk_deep_demo" / "sub"
    hidden.mkdir()
    (hidden / "fulcrum-plugin.toml").write_text(_replace(GOOD, 'kind = "branch"', 'kind = "department"'))
    record = site / "sdk_deep_demo-1.4.0.dist-info" / "RECORD"
    record.write_text("sdk_deep_demo/sub/fulcrum-plugin.toml,,\n" + record.read_text())
    manifest = manifest_from_distribution(importlib.metadata.distribution(name))
    assert manifest.kind == "branch"


def test_two_top_level_manifests_are_refused_naming_both(site: Path) -> None:
    """A distribution with two top-level packages each carrying a manifest is ambiguous: an error."""
    name = _dist(site, "sdk_twin_demo", manifest=GOOD, record_package=True)
    twin = site / "sdk_twin_other"
    twin.mkdir()
    (twin / "fulcrum-plugin.toml").write_text(GOOD)
    record = site / "sdk_twin_demo-1.4.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "sdk_twin_other/fulcrum-plugin.toml,,\n")
    both = r"more than one.*sdk_twin_demo/fulcrum-plugin\.toml.*sdk_twin_other"
    with pytest.raises(ManifestError, match=both):
        manifest_from_distribution(importlib.metadata.distribution(name))
