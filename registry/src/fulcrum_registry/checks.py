"""The automated checks a submitted wheel must pass, with stable ids, messages and fixes.

Every check is a pure function of the wheel's facts (``inspect_wheel``) and a ``CheckContext`` (the
submitting publisher, the plugin id's owner, earlier releases, the platform's SDK version), so the
registry runs them on submit and the conformance kit runs the very same functions on a local wheel
with no database. A check that cannot run because an earlier one failed (no manifest, say) is
``skipped``, not failed, so the list of failures names causes, not consequences.

    results = check_wheel("dist/x-1.0.0-py3-none-any.whl", CheckContext(publisher_id="pension-dept"))
    failed = [r for r in results if not r.passed]
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.hookspecs import PROJECT_NAME
from fulcrum_sdk.manifest import (
    Manifest,
    ManifestProblem,
    declaration_problems,
    manifest_from_builtins,
    sdk_mismatch,
    semantic_problems,
)
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from fulcrum_registry._wheel import WheelFacts, inspect_wheel

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "CheckSpec",
    "PriorRelease",
    "check_wheel",
    "installed_sdk_version",
    "project_name",
    "run_checks",
    "stored_manifest",
]

Status = Literal["passed", "failed", "skipped"]


class CheckSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a check verifies, what it says on success and failure, and how to fix a failure."""

    id: str
    passed: str
    failed: str
    fix: str


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One check's outcome: the stable ``message`` for its status, the fix, and specific ``details``."""

    id: str
    status: Status
    message: str
    fix: str | None = None
    details: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True only for ``passed``; a skipped check has not passed."""
        return self.status == "passed"


class PriorRelease(msgspec.Struct, frozen=True):
    """An earlier release of the same plugin id, as ``release.version_newer`` needs it."""

    version: str
    state: str


class CheckContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the checks know beyond the wheel; a field left ``None`` skips the check that needs it."""

    publisher_id: str | None = None
    publisher_kind: str | None = None
    plugin_owner: str | None = None  # the publisher owning the manifest's plugin id; None: unclaimed
    prior_releases: tuple[PriorRelease, ...] = ()
    sdk_version: str | None = None  # None: the fulcrum-sdk installed here
    type_owners: dict[str, str] | None = None
    """Transaction type key → the other plugin whose release (in review, approved or suspended)
    declares it; ``None`` (the conformance kit, with no registry) skips ``transaction_types.unclaimed``."""


def _spec(id: str, passed: str, failed: str, fix: str) -> CheckSpec:
    return CheckSpec(id=id, passed=passed, failed=failed, fix=fix)


CHECKS: dict[str, CheckSpec] = {
    s.id: s
    for s in (
        _spec(
            "wheel.well_formed",
            "the artifact is a well-formed wheel and every RECORD hash and size matches",
            "the artifact is not a well-formed wheel",
            "build it with a standard backend (`uv build`) and upload the .whl unchanged",
        ),
        _spec(
            "manifest.present_and_valid",
            "fulcrum-plugin.toml is present and valid",
            "fulcrum-plugin.toml is missing or invalid",
            "ship fulcrum-plugin.toml in the plugin's top-level package; fix the key named in the details",
        ),
        _spec(
            "manifest.version_matches_wheel",
            "the manifest, METADATA and the wheel's filename agree on the version",
            "the manifest's version differs from the wheel's",
            "drop `version` from fulcrum-plugin.toml (the distribution's version is used) and rebuild",
        ),
        _spec(
            "release.version_newer",
            "the version is newer than every earlier release of this plugin",
            "the version is not newer than every earlier release of this plugin",
            "raise the version in pyproject.toml above the newest earlier release and rebuild",
        ),
        _spec(
            "publisher.owns_plugin",
            "the submitting publisher owns this plugin id",
            "the submitting publisher may not publish this plugin id",
            "submit as the publisher owning the id, with `publisher` and `kind` in the manifest matching it",
        ),
        _spec(
            "manifest.scopes_known",
            "every requested scope exists and can be granted to a plugin",
            "the manifest requests scopes the platform does not know or cannot grant",
            "request only customer-data, placement and action scopes from fulcrum_sdk.scopes",
        ),
        _spec(
            "manifest.slots_known",
            "every slot exists and its placement scope is requested",
            "the manifest names unknown slots or slots without their placement scope",
            "use slot ids from fulcrum_sdk.models.SLOT_IDS and request `slot:<name>` for each",
        ),
        _spec(
            "manifest.hooks_known",
            "every hook exists in the SDK",
            "the manifest names hooks the SDK does not define",
            "list only hooks from fulcrum_sdk.hookspecs.HOOK_NAMES, spelled exactly",
        ),
        _spec(
            "sdk.range_satisfiable",
            "the platform's fulcrum-sdk version is inside the manifest's SDK range",
            "the manifest's SDK range excludes the platform's fulcrum-sdk version",
            "build the plugin for the platform's fulcrum-sdk: make the changes the SDK's CHANGELOG lists "
            "since your range, then set `sdk` in fulcrum-plugin.toml and the fulcrum-sdk dependency to a "
            "range including it",
        ),
        _spec(
            "transaction_types.declared",
            "every transaction type declares its product risk level and its amount field",
            "a transaction type does not declare its product risk level or its amount field",
            'declare each type as [transaction_types."<key>"] with risk_level = "R1".."R5" (or '
            "product_field and product_risks, each product's level) and amount_field = \"<parameter in "
            'fen>" (or moves_money = false), as register_transaction_types registers it',
        ),
        _spec(
            "transaction_types.unclaimed",
            "no other plugin declares the manifest's transaction types",
            "another plugin already declares a transaction type of this manifest",
            "name each transaction type after your plugin (`<plugin>.<action>`, e.g. `city_coupons.order`) "
            "so it cannot take another plugin's, in fulcrum-plugin.toml and in register_transaction_types",
        ),
        _spec(
            "project.matches_id",
            f"the wheel's project (distribution) name is `{PROJECT_NAME}-<plugin id>`",
            f"the wheel's project (distribution) name is not `{PROJECT_NAME}-<plugin id>`",
            f'name the project after the plugin id: `name = "{PROJECT_NAME}-<plugin id>"` under [project] in '
            "pyproject.toml, then rebuild",
        ),
        _spec(
            "entry_point.matches_id",
            f"the `{PROJECT_NAME}` entry point is exactly the plugin id",
            f"the wheel's `{PROJECT_NAME}` entry points are not exactly one named after the plugin id",
            f'declare `[project.entry-points.{PROJECT_NAME}]` with one line `<plugin id> = "<module>"`',
        ),
    )
}
"""Every check, in the order it runs; ids and messages are stable (clients and docs rely on them)."""


def _result(check_id: str, status: Status, details: list[str] | tuple[str, ...] = ()) -> CheckResult:
    spec = CHECKS[check_id]
    if status == "passed":
        return CheckResult(id=check_id, status=status, message=spec.passed, details=tuple(details))
    if status == "skipped":
        return CheckResult(
            id=check_id, status=status, message="not run: " + "; ".join(details), details=tuple(details)
        )
    return CheckResult(id=check_id, status=status, message=spec.failed, fix=spec.fix, details=tuple(details))


def _verdict(check_id: str, problems: list[str]) -> CheckResult:
    return _result(check_id, "failed", problems) if problems else _result(check_id, "passed")


_NO_MANIFEST = "the manifest could not be read"


def _well_formed(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    return _verdict("wheel.well_formed", list(facts.problems))


def _manifest_valid(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    if facts.manifest is not None:
        return _semantic("manifest.present_and_valid")(facts, ctx)
    where = f"{facts.manifest_key}: " if facts.manifest_key else ""
    return _result("manifest.present_and_valid", "failed", [where + (facts.manifest_problem or "unreadable")])


def _version_matches(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    if facts.manifest is None:
        return _result("manifest.version_matches_wheel", "skipped", [_NO_MANIFEST])
    claims = {
        "the filename": facts.version,
        "METADATA": facts.metadata_version,
        "fulcrum-plugin.toml": facts.manifest_declared_version or facts.manifest.version,
    }
    versions: dict[str, Version] = {}
    problems: list[str] = []
    for source, text in claims.items():
        if text is None:
            continue
        try:
            versions[source] = Version(text)
        except InvalidVersion:
            problems.append(f"{source} has an invalid version {text!r}")
    if len(set(versions.values())) > 1:
        problems.append(", ".join(f"{source} says {claims[source]}" for source in versions))
    elif "METADATA" in versions:
        # The host matches an installed plugin to its release by METADATA's text, and loads a manifest
        # only if its own ``version`` is that same text: equal under PEP 440 is not enough.
        written = facts.metadata_version
        if written != str(versions["METADATA"]):
            problems.append(
                f"METADATA's version {written!r} is not normalised (PEP 440: {versions['METADATA']})"
            )
        declared = facts.manifest_declared_version
        if declared is not None and declared != written:
            problems.append(
                f"fulcrum-plugin.toml says {declared!r}, METADATA says {written!r}: write it the same"
            )
    return _verdict("manifest.version_matches_wheel", problems)


def _release_version(facts: WheelFacts) -> str | None:
    return facts.metadata_version or facts.version


def _version_newer(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    # Releases that failed their checks never reached a reviewer or an index, so their version may be
    # submitted again; every other earlier release (even a rejected one) pins its version forever.
    text = _release_version(facts)
    if text is None:
        return _result("release.version_newer", "skipped", ["the wheel has no version"])
    try:
        version = Version(text)
    except InvalidVersion:
        return _result("release.version_newer", "failed", [f"{text!r} is not a valid version"])
    problems = [
        f"earlier release {prior.version} ({prior.state}) is not older"
        for prior in ctx.prior_releases
        if prior.state != "checks_failed" and Version(prior.version) >= version
    ]
    return _verdict("release.version_newer", problems)


def _owns_plugin(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    manifest = facts.manifest
    if manifest is None:
        return _result("publisher.owns_plugin", "skipped", [_NO_MANIFEST])
    if ctx.publisher_id is None:
        return _result("publisher.owns_plugin", "skipped", ["no submitting publisher given"])
    problems: list[str] = []
    if manifest.publisher != ctx.publisher_id:
        problems.append(
            f"the manifest names publisher {manifest.publisher!r}, the submitter is {ctx.publisher_id!r}"
        )
    if ctx.plugin_owner is not None and ctx.plugin_owner != ctx.publisher_id:
        problems.append(f"plugin id {manifest.id!r} belongs to publisher {ctx.plugin_owner!r}")
    if ctx.publisher_kind is not None and manifest.kind != ctx.publisher_kind:
        # The kind decides how far the platform trusts the plugin; a partner cannot claim to be a department.
        problems.append(
            f"the manifest says kind {manifest.kind!r}, the publisher is a {ctx.publisher_kind!r}"
        )
    return _verdict("publisher.owns_plugin", problems)


def _problem_check(problem: ManifestProblem) -> str:
    """Which check reports a semantic problem from the SDK, by the manifest key it concerns."""
    top = problem.key.split(".", 1)[0]
    if top == "oauth":  # the backend client's keys and redirect URIs: no scope, slot or hook is wrong
        return "manifest.present_and_valid"
    if top == "scopes":
        return "manifest.scopes_known"
    if top == "slots":
        return "manifest.slots_known"
    if top == "hooks":
        return "manifest.hooks_known"
    return "manifest.hooks_known" if "hook" in problem.problem else "manifest.scopes_known"


def _semantic(check_id: str) -> Callable[[WheelFacts, CheckContext], CheckResult]:
    def check(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
        if facts.manifest is None:
            return _result(check_id, "skipped", [_NO_MANIFEST])
        problems = [
            f"{p.key}: {p.problem}"
            for p in semantic_problems(facts.manifest)
            if _problem_check(p) == check_id
        ]
        return _verdict(check_id, problems)

    return check


def stored_manifest(snapshot: object) -> tuple[Manifest | None, ManifestProblem | None]:
    """A release's stored manifest as ``manifest.present_and_valid`` judges one today: the manifest (None
    when none was stored, or it cannot be read as one or shown: a bidi override in its name) and the key
    and problem that fail it, if any. The rules tighten (ids refused ``--``, display text bidi overrides,
    redirect URIs all but printable ASCII), so a release filed before may fail them now: it is listed
    with its problem, and never runs nor is served."""
    if snapshot is None:
        return None, None
    try:
        manifest = manifest_from_builtins(snapshot, file="the stored manifest")
    except ManifestError as exc:
        return None, ManifestProblem(exc.key or "manifest", exc.problem)
    # Its OAuth client's keys and redirect URIs: the manifest reads, so it is still shown (and diffed).
    found = (p for p in semantic_problems(manifest) if _problem_check(p) == "manifest.present_and_valid")
    return manifest, next(found, None)


def installed_sdk_version() -> str:
    """The version of the fulcrum-sdk distribution installed alongside the registry."""
    return importlib.metadata.version("fulcrum-sdk")


def _sdk_range(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    if facts.manifest is None:
        return _result("sdk.range_satisfiable", "skipped", [_NO_MANIFEST])
    platform = ctx.sdk_version or installed_sdk_version()
    try:
        satisfied = SpecifierSet(facts.manifest.sdk).contains(platform, prereleases=True)
    except InvalidSpecifier as exc:
        return _result(
            "sdk.range_satisfiable", "failed", [f"sdk = {facts.manifest.sdk!r} is not a valid range: {exc}"]
        )
    return _verdict(
        "sdk.range_satisfiable",
        [] if satisfied else [f"sdk: {sdk_mismatch(facts.manifest.sdk, platform, runner='the platform')}"],
    )


def project_name(plugin_id: str) -> str:
    """The canonical project name a plugin's wheels must carry: ``fulcrum-<plugin id>``, as installers
    compare names (PEP 503), so one project never holds two plugins' wheels."""
    return str(canonicalize_name(f"{PROJECT_NAME}-{plugin_id}"))


def _project_matches(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    """An installer finds a plugin by its project name: a wheel named after another plugin's project
    would be installed in that plugin's place."""
    if facts.manifest is None:
        return _result("project.matches_id", "skipped", [_NO_MANIFEST])
    if facts.name is None:
        return _result("project.matches_id", "skipped", ["the wheel's filename names no project"])
    expected = project_name(facts.manifest.id)
    if facts.name == expected:
        return _result("project.matches_id", "passed")
    failed = _result(
        "project.matches_id",
        "failed",
        [f"the wheel's project is {facts.name!r}, plugin {facts.manifest.id!r} must be {expected!r}"],
    )
    return msgspec.structs.replace(
        failed, fix=f'name the project `name = "{expected}"` under [project] in pyproject.toml, then rebuild'
    )


def _entry_point(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    manifest: Manifest | None = facts.manifest
    if manifest is None:
        return _result("entry_point.matches_id", "skipped", [_NO_MANIFEST])
    names = [ep.name for ep in facts.entry_points if ep.group == PROJECT_NAME]
    if names == [manifest.id]:
        return _result("entry_point.matches_id", "passed")
    found = ", ".join(names) if names else "none"
    failed = _result(
        "entry_point.matches_id", "failed", [f"expected exactly {manifest.id!r}, found: {found}"]
    )
    module = _entry_module(facts)
    if module is None:
        return failed
    line = f'"{manifest.id}" = "{module}"'
    return msgspec.structs.replace(
        failed, fix=f"declare `[project.entry-points.{PROJECT_NAME}]` with the one line `{line}`"
    )


def _entry_module(facts: WheelFacts) -> str | None:
    """The module the plugin's entry point should name: the one its single misnamed entry point names
    already (where its hooks are), else the package the manifest was found in; None when unknown."""
    values = [ep.value for ep in facts.entry_points if ep.group == PROJECT_NAME]
    if len(values) == 1 and values[0]:
        return values[0]
    return facts.manifest_package


def _types_declared(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    """Reviewers approve a type's product risk and its money limit from the manifest: both are stated."""
    if facts.manifest is None:
        return _result("transaction_types.declared", "skipped", [_NO_MANIFEST])
    return _verdict(
        "transaction_types.declared", [f"{p.key}: {p.problem}" for p in declaration_problems(facts.manifest)]
    )


def _types_unclaimed(facts: WheelFacts, ctx: CheckContext) -> CheckResult:
    """A transaction type belongs to one plugin: a second one declaring its key could be sent the
    customers' orders for it (the host gives a key to one running plugin only)."""
    if facts.manifest is None:
        return _result("transaction_types.unclaimed", "skipped", [_NO_MANIFEST])
    if ctx.type_owners is None:
        return _result("transaction_types.unclaimed", "skipped", ["no registry: other plugins are not known"])
    taken = [
        f"{key!r} is declared by plugin {ctx.type_owners[key]!r}"
        for key in facts.manifest.type_keys
        if key in ctx.type_owners
    ]
    return _verdict("transaction_types.unclaimed", taken)


_RUNNERS: dict[str, Callable[[WheelFacts, CheckContext], CheckResult]] = {
    "wheel.well_formed": _well_formed,
    "manifest.present_and_valid": _manifest_valid,
    "manifest.version_matches_wheel": _version_matches,
    "release.version_newer": _version_newer,
    "publisher.owns_plugin": _owns_plugin,
    "manifest.scopes_known": _semantic("manifest.scopes_known"),
    "manifest.slots_known": _semantic("manifest.slots_known"),
    "manifest.hooks_known": _semantic("manifest.hooks_known"),
    "sdk.range_satisfiable": _sdk_range,
    "transaction_types.declared": _types_declared,
    "transaction_types.unclaimed": _types_unclaimed,
    "project.matches_id": _project_matches,
    "entry_point.matches_id": _entry_point,
}


def run_checks(facts: WheelFacts, context: CheckContext | None = None) -> tuple[CheckResult, ...]:
    """Run every check in ``CHECKS`` order; the wheel is never imported or unpacked."""
    ctx = context or CheckContext()
    if not facts.readable:
        first = _well_formed(facts, ctx)
        rest = [
            _result(i, "skipped", ["the artifact is not a readable wheel"]) for i in CHECKS if i != first.id
        ]
        return (first, *rest)
    return tuple(_RUNNERS[check_id](facts, ctx) for check_id in CHECKS)


def check_wheel(path: str | Path, context: CheckContext | None = None) -> tuple[CheckResult, ...]:
    """Inspect and check a local wheel file in one call (what the conformance kit runs)."""
    return run_checks(inspect_wheel(path), context)
