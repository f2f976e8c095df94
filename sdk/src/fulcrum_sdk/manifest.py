"""``fulcrum-plugin.toml``: the manifest every plugin ships inside its package, and its loaders.

The manifest is read without importing the plugin — from an installed distribution or straight out
of a wheel file — so the host and the registry can judge a plugin before running any of its code.
Its version is the distribution's version. Errors name the file, the key and the problem.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import importlib.util
import re
import zipfile
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from fulcrum_sdk._in_words import in_words, worded
from fulcrum_sdk.display import DISPLAY_TEXT, find_display_problem
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.hookspecs import HOOK_NAMES, PROJECT_NAME
from fulcrum_sdk.models import SLOT_IDS, LocalizedText, RiskLevel
from fulcrum_sdk.oauth_client import OAuthClient, oauth_problems
from fulcrum_sdk.scopes import PLUGIN_GRANTABLE_KINDS, SCOPES, slot_scope

__all__ = [
    "CHANGELOG",
    "ID_PATTERN",
    "ID_WORDS",
    "MANIFEST_FILE",
    "RESERVED_PLUGIN_IDS",
    "Manifest",
    "ManifestProblem",
    "Owner",
    "ScopeRequests",
    "TransactionTypeDeclaration",
    "declaration_problems",
    "manifest_from_builtins",
    "manifest_from_distribution",
    "manifest_from_wheel",
    "parse_manifest",
    "sdk_mismatch",
    "semantic_problems",
    "validation_problem",
]

MANIFEST_FILE = "fulcrum-plugin.toml"

CHANGELOG = "sdk/CHANGELOG.md"
"""Where each SDK version says what a plugin written for the one before must change (in the repository)."""

RESERVED_PLUGIN_IDS = frozenset({"platform", "host", "unknown"})
"""Ids no plugin may take: ``platform`` names the host's own default content on the home page, ``host``
and ``unknown`` the culprits of event-loop stalls that are no plugin's (``/metrics``)."""

ID_WORDS = (
    "2 to 50 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen and "
    "with no two hyphens in a row, such as city-coupons (a wheel's project name folds '--' into one "
    "hyphen: city--coupons would be city-coupons)"
)
"""What :data:`ID_PATTERN` takes, in words: what every refusal of an id says."""
# Each pattern with what it takes in words, for the manifest's error: its author wrote TOML, not a regex.
ID_PATTERN = worded(r"^[a-z](?:[a-z0-9]|-(?!-)){0,48}[a-z0-9](?!\n)$", ID_WORDS)
"""A plugin or publisher id: 2 to 50 characters, no ``--`` (a project name folds it into one hyphen,
so ``city--coupons`` and ``city-coupons`` would be one project, ``fulcrum-city-coupons``). The
registry's publisher ids and the branch files' plugin ids take the same."""
_EMAIL_PATTERN = worded(
    r"^[^@\s]+@[^@\s]+(?!\n)$", "an e-mail address such as dev@partner.example (no spaces)"
)
_SPECIFIER_PATTERN = worded(
    r"^\s*(~=|==|!=|<=|>=|<|>)\s*[0-9][0-9a-z.*+!-]*(\s*,\s*(~=|==|!=|<=|>=|<|>)\s*[0-9][0-9a-z.*+!-]*)*\s*$",
    "version specifiers such as '>=0.2,<0.3'",
)
PluginId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
PublisherId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
_Specifier = Annotated[str, msgspec.Meta(pattern=_SPECIFIER_PATTERN)]
_Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=300), DISPLAY_TEXT]
"""Why the plugin needs a scope: the consent page shows it to the customer."""


class Owner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who to call about the plugin; a reviewer reads the name."""

    name: Annotated[str, msgspec.Meta(min_length=1), DISPLAY_TEXT]
    email: Annotated[str, msgspec.Meta(pattern=_EMAIL_PATTERN)]


class ScopeRequests(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scopes the plugin asks for, each with the reason a reviewer and the customer will read."""

    required: dict[str, _Reason] = {}
    optional: dict[str, _Reason] = {}

    @property
    def all(self) -> frozenset[str]:
        """Required and optional scope names together."""
        return frozenset(self.required) | frozenset(self.optional)


_FieldName = Annotated[
    str,
    msgspec.Meta(
        pattern=worded(
            r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$",
            "a parameter's name: ASCII letters, digits and '_', not starting with a digit, such as "
            "amount_fen",
        )
    ),
]


class TransactionTypeDeclaration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a transaction type declares for review, as ``[transaction_types."<key>"]``: its product
    risk (a fixed ``risk_level``, or ``product_field`` with each product's level in ``product_risks``),
    the parameter holding its amount in fen (``amount_field``, or ``moves_money = false``), and the
    parameters naming one of the customer's accounts (``account_fields``), whose ids the host checks."""

    risk_level: RiskLevel | None = None
    product_field: _FieldName | None = None
    product_risks: dict[str, RiskLevel] = {}
    amount_field: _FieldName | None = None
    moves_money: bool = True
    account_fields: tuple[_FieldName, ...] = ()


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The validated content of ``fulcrum-plugin.toml`` plus the distribution's version."""

    id: PluginId
    name: LocalizedText
    description: LocalizedText
    publisher: PublisherId
    kind: Literal["department", "branch", "partner"]
    placement: Literal["in_process", "remote"] = "in_process"
    sdk: _Specifier
    hooks: tuple[str, ...]
    slots: tuple[str, ...] = ()
    # Each type's declaration; the bare list of keys is how releases before declarations wrote it,
    # still read (the registry keeps their manifests) but refused by the checks and by the host.
    transaction_types: dict[str, TransactionTypeDeclaration] | tuple[str, ...] = ()
    # A factory, not a shared instance: OpenAPI generators compare defaults by hash.
    scopes: ScopeRequests = msgspec.field(default_factory=ScopeRequests)
    owner: Owner
    # The backend's OAuth client: a partner's signing keys and the flow's redirect URIs (oauth_client.py).
    oauth: OAuthClient | None = None
    version: str | None = None

    @property
    def type_keys(self) -> tuple[str, ...]:
        """The keys of the transaction types the plugin declares, in the manifest's order."""
        return tuple(self.transaction_types)

    def declaration(self, key: str) -> TransactionTypeDeclaration | None:
        """The declaration of transaction type ``key``; ``None`` when there is none (or only its key)."""
        if isinstance(self.transaction_types, dict):
            return self.transaction_types.get(key)
        return None


class ManifestProblem(msgspec.Struct, frozen=True):
    """One semantic problem: the key it concerns and what is wrong."""

    key: str
    problem: str


def validation_problem(message: str) -> tuple[str | None, str]:
    """msgspec's ``"... - at `$.scopes.required`"`` about a manifest as (``scopes.required``, the problem
    in words): however the manifest was read, its refusal reads the same."""
    match = re.search(r" - at `\$\.?(.*)`$", message)
    path = match.group(1) if match else ""
    problem = message[: match.start()] if match else message
    missing = re.match(r"Object missing required field `([^`]+)`", problem)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        problem = "required key is missing"
    else:  # an unknown key (with the keys there are and a did-you-mean), a value of the wrong type or pattern
        path, problem = in_words(Manifest, message, an_object="a table", field="key")
    key = path.replace("[...]", ".*").replace("[", ".").replace("]", "")
    return key or None, problem


def parse_manifest(content: bytes | str, *, file: str, version: str | None = None) -> Manifest:
    """Decode and validate manifest text; ``version`` (the distribution's) fills or must equal ``version``."""
    try:
        manifest = msgspec.toml.decode(content, type=Manifest)
    except msgspec.ValidationError as exc:
        key, problem = validation_problem(str(exc))
        raise ManifestError(file, key, problem) from None
    except msgspec.DecodeError as exc:
        raise ManifestError(file, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec raises it for bytes that are not UTF-8
        raise ManifestError(file, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    _check_decoded(manifest, file)
    if version is not None:
        if manifest.version is not None and manifest.version != version:
            raise ManifestError(
                file, "version", f"says {manifest.version!r} but the distribution's version is {version!r}"
            )
        manifest = msgspec.structs.replace(manifest, version=version)
    return manifest


def manifest_from_builtins(data: object, *, file: str) -> Manifest:
    """A manifest kept as JSON-ready data (``msgspec.to_builtins`` of one, as the registry stores each
    release's), judged by the rules :func:`parse_manifest` applies today: the rules tighten, so one kept
    from before may fail them; ``ManifestError`` names the key and the problem in words."""
    try:
        manifest = msgspec.convert(data, Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(file, *validation_problem(str(exc))) from None
    _check_decoded(manifest, file)
    return manifest


def _check_decoded(manifest: Manifest, file: str) -> None:
    """What a decoded manifest must also pass: its display text, and an id no plugin may take."""
    # The name and scope reasons are what the consent page shows: text that reads otherwise than it holds
    # (a bidi override) is refused wherever a manifest is read, the registry's submission included.
    shown = find_display_problem(manifest)
    if shown is not None:
        raise ManifestError(file, *shown)
    if manifest.id in RESERVED_PLUGIN_IDS:
        reserved = f"{manifest.id!r} is reserved: the host names its own content or its own stalls so"
        raise ManifestError(file, "id", reserved)


def sdk_mismatch(sdk_range: str, running: str, *, runner: str) -> str:
    """Why a plugin whose ``sdk`` range excludes the running SDK is refused by ``runner`` (the host, the
    platform): both versions, and where to read what changed between them, since widening the range
    alone would not do (a minor version before 1.0 may change the contract, as 0.2 did)."""
    return (
        f"needs fulcrum-sdk {sdk_range} but {runner} runs fulcrum-sdk {running}; "
        f"see the SDK's CHANGELOG ({CHANGELOG}) for what changed"
    )


def semantic_problems(manifest: Manifest) -> list[ManifestProblem]:
    """What a well-formed manifest gets wrong about the platform: unknown scopes, slots, hooks."""
    problems: list[ManifestProblem] = []
    for section, names in (("required", manifest.scopes.required), ("optional", manifest.scopes.optional)):
        for name in names:
            if name not in SCOPES:
                problems.append(ManifestProblem(f"scopes.{section}.{name}", "unknown scope"))
            elif SCOPES[name].kind not in PLUGIN_GRANTABLE_KINDS:
                problems.append(
                    ManifestProblem(
                        f"scopes.{section}.{name}", f"{SCOPES[name].kind} scopes cannot be granted to plugins"
                    )
                )
    for i, slot in enumerate(manifest.slots):
        if slot not in SLOT_IDS:
            problems.append(
                ManifestProblem(f"slots.{i}", f"unknown slot {slot!r}; known: {', '.join(SLOT_IDS)}")
            )
        elif slot_scope(slot) not in manifest.scopes.all:
            problems.append(ManifestProblem(f"slots.{i}", f"slot {slot!r} needs scope {slot_scope(slot)!r}"))
    for i, hook in enumerate(manifest.hooks):
        if hook not in HOOK_NAMES:
            problems.append(
                ManifestProblem(f"hooks.{i}", f"unknown hook {hook!r}; known: {', '.join(HOOK_NAMES)}")
            )
    if manifest.transaction_types:
        if "transactions:write" not in manifest.scopes.all:
            problems.append(
                ManifestProblem("transaction_types", "transaction types need scope 'transactions:write'")
            )
        if "execute_transaction" not in manifest.hooks:
            problems.append(
                ManifestProblem("transaction_types", "transaction types need hook 'execute_transaction'")
            )
    problems += [
        ManifestProblem("slots", f"hook {hook!r} is implemented but no slot is declared")
        for hook in ("home_slot_offers", "home_slot_campaigns")
        if hook in manifest.hooks and not manifest.slots
    ]
    oauth = oauth_problems(manifest.oauth, kind=manifest.kind)
    problems += [ManifestProblem(key, problem) for key, problem in oauth]
    return problems


def declaration_problems(manifest: Manifest) -> list[ManifestProblem]:
    """What each transaction type's declaration lacks or contradicts: a product risk level and the
    amount field (or ``moves_money = false``) must be stated, so reviewers and the host see them."""
    problems: list[ManifestProblem] = []
    for key in manifest.type_keys:
        where = f"transaction_types.{key}"
        declared = manifest.declaration(key)
        if declared is None:
            problems.append(ManifestProblem(where, (
                "declares no product risk level and no amount field (only the key is listed); declare "
                f'[transaction_types."{key}"] with risk_level = "R1".."R5" (or product_field and '
                'product_risks) and amount_field = "<parameter in fen>" (or moves_money = false)'
            )))
            continue
        problems += [ManifestProblem(f"{where}.{field}", problem) for field, problem in _declared(declared)]
    return problems


def _declared(declared: TransactionTypeDeclaration) -> list[tuple[str, str]]:
    """(field, problem) for one declaration."""
    problems: list[tuple[str, str]] = []
    if declared.risk_level is None and not declared.product_risks:
        problems.append(("risk_level", "required: the product risk level R1–R5, or product_field with "
                         "product_risks (each product's level) for a type selling several products"))
    if declared.risk_level is not None and (declared.product_risks or declared.product_field):
        problems.append(("risk_level", "give a fixed risk_level or product_field with product_risks, "
                         "not both"))
    if bool(declared.product_risks) != bool(declared.product_field):
        missing = "product_field" if declared.product_risks else "product_risks"
        problems.append((missing, "required with " + ("product_risks" if declared.product_risks
                                                      else "product_field")))
    if declared.moves_money and declared.amount_field is None:
        problems.append(("amount_field", "required: the parameter holding the amount in fen, for the "
                         "host's limits; or moves_money = false for a type that moves no money"))
    if not declared.moves_money and declared.amount_field is not None:
        problems.append(("moves_money", "false, but amount_field names an amount: drop one of them"))
    return problems


def _entry_point_modules(dist: importlib.metadata.Distribution) -> list[str]:
    return [ep.module for ep in dist.entry_points if ep.group == PROJECT_NAME]


def manifest_from_distribution(dist: importlib.metadata.Distribution) -> Manifest:
    """Read the manifest of an installed distribution without importing its code.

    Looks in the distribution's RECORD first, for ``<top-level package>/fulcrum-plugin.toml``; for
    editable installs (no package files in RECORD) it locates the entry point's top-level package
    with ``importlib.util.find_spec``, which finds a top-level package without executing it.
    """
    name = dist.metadata["Name"]
    # Only a top-level package's manifest, as the registry reviews it: one deeper in a package is
    # never the plugin's (and a wheel holding two would be refused on submission).
    found = [f for f in dist.files or () if f.name == MANIFEST_FILE and len(f.parts) == 2
             and not f.parts[0].endswith(".dist-info")]
    if len(found) > 1:
        listed = ", ".join(sorted(str(f) for f in found))
        raise ManifestError(name, None, f"more than one {MANIFEST_FILE} in the distribution ({listed})")
    if found:
        return parse_manifest(found[0].read_binary(), file=f"{name}:{found[0]}", version=dist.version)
    for module in _entry_point_modules(dist):
        spec = importlib.util.find_spec(module.split(".", 1)[0])
        for location in (spec.submodule_search_locations or []) if spec else []:
            path = Path(location) / MANIFEST_FILE
            if path.is_file():
                return parse_manifest(path.read_bytes(), file=str(path), version=dist.version)
    raise ManifestError(f"{name}", None, f"no {MANIFEST_FILE} found in the distribution's package")


def _wheel_version(zf: zipfile.ZipFile, file: str) -> str:
    metadata = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(metadata) != 1:
        raise ManifestError(file, None, "not a wheel: expected exactly one *.dist-info/METADATA")
    version = email.parser.BytesParser().parsebytes(zf.read(metadata[0])).get("Version")
    if not version:
        raise ManifestError(file, None, "the wheel's METADATA has no Version")
    return str(version)


def manifest_from_wheel(path: str | Path) -> Manifest:
    """Read the manifest out of a wheel file, never importing or unpacking the plugin."""
    file = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            candidates = [n for n in zf.namelist() if n.endswith("/" + MANIFEST_FILE) and n.count("/") == 1]
            if len(candidates) != 1:
                raise ManifestError(
                    file,
                    None,
                    f"expected exactly one <package>/{MANIFEST_FILE} in the wheel, found {len(candidates)}",
                )
            version = _wheel_version(zf, file)
            return parse_manifest(zf.read(candidates[0]), file=f"{file}!{candidates[0]}", version=version)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ManifestError(file, None, f"cannot read the wheel: {exc}") from None
