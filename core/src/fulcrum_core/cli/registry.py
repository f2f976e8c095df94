"""``fulcrum registry``: publishers (and their suspension), submit, list, show, review, approve, reject,
suspend, resume, retire, audit.

The commands talk to the registry's database directly through ``RegistryService`` (the settings'
``database_url`` and ``registry_artifacts_dir``), not to the HTTP API: they work offline, on a host
where the server is not running, and in scripts that prepare an environment. Whoever can run them
already holds the database credentials, which is more than any token grants, so there is no token
to check; ``--as NAME`` says who acts, and every change is recorded under that name in the audit
chain. The registry's own rules still apply (four eyes, two approvers, legal transitions). People
without database access use the HTTP API with a staff token instead.

Output is for people by default; ``--json`` prints the service's structs as JSON. The ``registry``
group (registry_group.py) imports this module only when one of its commands runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from fulcrum_registry import (
    REVIEW_CHECKLIST,
    InvalidInput,
    RegistryError,
    RegistryService,
    ReleaseDiff,
    ReleaseRead,
    ReleaseState,
)
from fulcrum_registry.audit import AuditEntry
from fulcrum_registry.placeholders import placeholder_warnings
from fulcrum_registry.schemas import PendingUndo, PublisherRead
from fulcrum_registry.workflow import high_sensitivity
from fulcrum_sdk import LocalizedText
from fulcrum_sdk.manifest import Manifest
from sqlalchemy.exc import OperationalError, ProgrammingError

from fulcrum_core.cli._groups import refuse_own_options
from fulcrum_core.cli._settings import existing_database, settings_for
from fulcrum_core.registry_host.host import open_registry

__all__ = [
    "add_publisher",
    "approve",
    "audit",
    "list_",
    "publishers",
    "reinstate_publisher",
    "reject",
    "resume",
    "retire",
    "review",
    "show",
    "submit",
    "suspend",
    "suspend_publisher",
]

T = TypeVar("T")

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
_actor_option = click.option("--as", "actor", required=True, metavar="NAME", help="Who acts (audited).")


@contextmanager
def _service(ctx: click.Context) -> Iterator[RegistryService]:
    settings = settings_for(ctx)
    db = existing_database(settings)  # every command needs a migrated database: none is created here
    try:
        yield open_registry(settings, db)
    except RegistryError as exc:
        if isinstance(exc.__cause__, (OperationalError, ProgrammingError)):
            # The CLI's one line: unreachable, or not migrated yet (PostgreSQL reports a missing
            # table or column as a ProgrammingError, SQLite as an OperationalError).
            raise exc.__cause__ from None
        raise click.ClickException(_refusal(ctx, exc)) from exc
    finally:
        db.dispose()


_FIELD_OF = {"publisher_id": ("id",), "actor": ("actor", "reviewer"), "after": ("cursor",)}
"""The registry fields a command's parameter carries, where the names differ (``--as`` names who acts,
and in a listing the reviewer it is for; ``--after`` is where the next page starts)."""


def _refusal(ctx: click.Context, exc: RegistryError) -> str:
    """``exc``'s words, naming the command's option or argument where the refused field is one
    (``--reason``, not ``reasons.0``; ``ID``, as click's usage line and errors name it, not ``id``): the
    parameter is what the user typed."""
    if isinstance(exc, InvalidInput):
        head = re.split(r"[.\[]", exc.field, maxsplit=1)[0]
        for param in ctx.command.params:
            if head not in _FIELD_OF.get(param.name or "", (param.name,)):
                continue
            if isinstance(param, click.Option):
                return f"{param.opts[0]}: {exc.problem}"
            if isinstance(param, click.Argument):
                return f"{param.human_readable_name}: {exc.problem}"
    return exc.detail


def _emit(value: Any, as_json: bool, text: Callable[[], str]) -> None:
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))
    else:
        click.echo(text())


def _diff_text(diff: ReleaseDiff | None) -> list[str]:
    if diff is None:
        return ["diff: (no manifest to compare)"]
    lines = [
        f"diff against the previous approved release: {diff.baseline_version} "
        f"(release {diff.baseline_release_id})"
        if diff.baseline_version
        else "diff: no earlier release of this plugin was approved, so all it asks for is new"
    ]
    for label, items in (
        ("new scopes", diff.added_scopes),
        ("new HIGH-sensitivity scopes", diff.added_high_sensitivity_scopes),
        ("dropped scopes", diff.removed_scopes),
        ("new slots", diff.added_slots),
        ("new transaction types", diff.added_transaction_types),
        ("changed transaction type declarations", diff.changed_transaction_types),
        ("new hooks", diff.added_hooks),
        ("new redirect URIs", diff.added_redirect_uris),
        ("dropped redirect URIs", diff.removed_redirect_uris),
        ("new signing keys (kid)", diff.added_key_ids),
        ("dropped signing keys (kid)", diff.removed_key_ids),
    ):
        if items:
            lines.append(f"  {label}: {', '.join(items)}")
    if diff.is_empty:
        lines.append("  nothing added or removed")
    return lines


def _pending_text(pending: PendingUndo | None, doing: str, barred: str, *, full: bool = False) -> list[str]:
    """A half-agreed undo in words, for the reviewer who could complete it: ``resume agreed by dave
    (1 of 2); needs one more reviewer, not …``; with ``full``, each agreement's time and reason."""
    if pending is None:
        return []
    more = max(pending.needed - len(pending.agreed), 1)  # the next agreement completes it at the least
    wanted = "one more reviewer" if more == 1 else f"{more} more reviewers"
    pulled = f" ({pending.suspended_by})" if pending.suspended_by else ""
    lines = [
        f"{doing} agreed by {', '.join(a.by for a in pending.agreed)} "
        f"({len(pending.agreed)} of {pending.needed}); needs {wanted}, "
        f"not {barred}, who suspended it{pulled} or who agreed already"
    ]
    if full:
        lines += [f"  {a.by} agreed {a.at:%Y-%m-%d %H:%M:%S}: {a.reason or '-'}" for a in pending.agreed]
    return lines


def _approval_text(release: ReleaseRead, publisher: PublisherRead | None = None) -> list[str]:
    """A release in review approved by fewer than it needs, in the words of a half-agreed undo:
    ``approved by bob (1 of 2); needs one more reviewer, not …``; or, its publisher suspended, what
    holds it instead (``--waiting`` leaves it out alike), with the reinstatement ``publisher`` awaits."""
    given, needed = len(release.approvals), release.approvals_needed
    if release.state == "in_review" and release.publisher_suspended:
        so_far = f"approved by {', '.join(release.approvals)} ({given} of {needed}); " if given else ""
        pid = release.publisher_id
        return [
            f"{so_far}on hold: publisher {pid} is suspended, so approving is refused until it is "
            f"reinstated (reinstate-publisher {pid}, not by one of its submitters or who suspended it)",
            *(_publisher_pending(publisher) if publisher is not None else []),
        ]
    if release.state != "in_review" or not given or given >= needed:
        return []
    wanted = "one more reviewer" if needed - given == 1 else f"{needed - given} more reviewers"
    return [
        f"approved by {', '.join(release.approvals)} ({given} of {needed}); needs {wanted}, "
        f"not the submitter ({release.submitted_by}) or who approved already"
    ]


def _publisher_pending(publisher: PublisherRead) -> list[str]:
    return _pending_text(publisher.pending_reinstatement, "reinstatement", "one of its submitters")


def _publisher_lines(p: PublisherRead) -> list[str]:
    """A publisher in one line, and under it a reinstatement waiting for another reviewer."""
    line = f"{p.id:<20} {p.kind:<10} {_verified(p.verified):<10} {p.name}  <{p.contact}>"
    return [line + _status(p.suspended), *(f"  {pending}" for pending in _publisher_pending(p))]


def _refused_text(release: ReleaseRead) -> list[str]:
    """A line for a release whose stored manifest fails today's rules: it never runs, whatever its state
    (one whose checks failed says so in them already)."""
    problem = release.manifest_problem
    if problem is None or release.state == "checks_failed":
        return []
    return [
        f"FAILS TODAY'S RULES: {problem.key}: {problem.problem}; it never runs nor is served "
        "(reject, suspend or retire it)"
    ]


def _release_text(
    release: ReleaseRead,
    diff: ReleaseDiff | None = None,
    *,
    full: bool = False,
    publishers: Mapping[str, PublisherRead] | None = None,
) -> str:
    """A release in words; ``publishers`` (by id) are the suspended ones whose reinstatement it waits for."""
    # A release whose publisher may not claim its plugin id is filed without one: its manifest still says
    # which plugin it is for (``?`` only when there is no readable manifest).
    claimed = release.plugin_id or (
        f"{release.manifest.id} (unclaimed)" if release.manifest is not None else "?"
    )
    head = (
        f"release {release.id}: {claimed} {release.version} [{release.state}] "
        f"publisher {release.publisher_id}, submitted by {release.submitted_by}"
    )
    publisher = (publishers or {}).get(release.publisher_id)
    pending = _refused_text(release) + _approval_text(release, publisher) + _pending_text(
        release.pending_resume, "resume", f"the submitter ({release.submitted_by})", full=full
    )
    if not full:
        return "\n".join([head, *(f"  {line}" for line in pending)])
    lines = [head, f"artifact {release.artifact.filename} sha256={release.artifact.sha256}"]
    lines.append("checks:")
    for check in release.checks:
        lines.append(f"  {check.status:<7} {check.id}")
        if check.status == "failed":
            lines.append(f"          {check.message}")
        lines += [f"          - {detail}" for detail in check.details]
        if check.status == "failed" and check.fix:
            lines.append(f"          fix: {check.fix}")
    lines.append(
        f"requested: required {', '.join(release.requested.required) or '-'}; "
        f"optional {', '.join(release.requested.optional) or '-'}"
    )
    if release.granted_scopes is not None:
        lines.append(f"granted: {', '.join(release.granted_scopes) or '-'}")
    who = f" ({', '.join(release.approvals)})" if release.approvals else ""
    high = sorted(high_sensitivity((*release.requested.required, *release.requested.optional)))
    why = f" (high-sensitivity: {', '.join(high)})" if high and release.approvals_needed > 1 else ""
    lines.append(f"approvals: {len(release.approvals)} of {release.approvals_needed}{why}{who}")
    for review in release.reviews:
        said = f": {'; '.join(review.reasons)}" if review.reasons else " (no reason given)"
        lines.append(f"  {review.reviewer} {review.decision}{said}")
    lines += pending
    if diff is not None or release.manifest is not None:
        lines += _diff_text(diff)
    lines += [f"warning: {warning}" for warning in placeholder_warnings(release.manifest)]
    return "\n".join(lines)


def _manifest_text(manifest: Manifest | None) -> list[str]:
    """What the checklist asks the reviewer to confirm: the display text, the owner, every scope's reason,
    and each transaction type's product risk and amount field (the suitability rule and limit it gets)."""
    if manifest is None:
        return []

    def both(text: LocalizedText) -> str:
        return " / ".join(t for t in (text.zh_CN, text.en) if t)

    lines = [
        f"name: {both(manifest.name)}",
        f"description: {both(manifest.description)}",
        f"owner: {manifest.owner.name} <{manifest.owner.email}>",
        "scope reasons:",
    ]
    for kind, reasons in (("required", manifest.scopes.required), ("optional", manifest.scopes.optional)):
        lines += [f"  {kind} {scope}: {reason}" for scope, reason in reasons.items()]
    if manifest.type_keys:
        lines.append("transaction types:")
        lines += [f"  {key}: {_declared_text(manifest, key)}" for key in manifest.type_keys]
    return lines


def _declared_text(manifest: Manifest, key: str) -> str:
    """One type's declaration as a reviewer reads it: ``risk R2; amount in amount_fen``."""
    declared = manifest.declaration(key)
    if declared is None:
        return "UNDECLARED (no product risk level, no amount field)"
    if declared.product_risks:
        levels = ", ".join(f"{product} {level}" for product, level in sorted(declared.product_risks.items()))
        risk = f"risk per {declared.product_field}: {levels}"
    else:
        risk = f"risk {declared.risk_level or 'UNDECLARED'}"
    if not declared.moves_money:
        amount = "moves no money"
    else:
        amount = f"amount in {declared.amount_field}" if declared.amount_field else "amount UNDECLARED"
    named = ", ".join(sorted(declared.account_fields))
    accounts = f"; accounts in {named}" if named else ""
    return f"{risk}; {amount}{accounts}"


def _held_by(service: RegistryService, releases: Iterable[ReleaseRead]) -> dict[str, PublisherRead]:
    """The suspended publishers holding ``releases`` in review, by id: what their reinstatement awaits."""
    held = {r.publisher_id for r in releases if r.publisher_suspended and r.state == "in_review"}
    return {pid: service.get_publisher(pid) for pid in sorted(held)}


def _diff_or_none(service: RegistryService, release_id: int) -> ReleaseDiff | None:
    try:
        return service.diff(release_id)
    except RegistryError:
        return None


def _verified(flag: bool) -> str:
    return "verified" if flag else "unverified"


def _status(suspended: bool) -> str:
    return "  SUSPENDED" if suspended else ""


_waiting_option = click.option(
    "--waiting",
    is_flag=True,
    help="Only what waits for one more reviewer (a second approval, a second agreement to resume or "
    "reinstate); with --as, only what that reviewer may complete.",
)
_reviewer_option = click.option(
    "--as",
    "actor",
    default=None,
    metavar="NAME",
    help="With --waiting: leave out what NAME submitted, suspended, approved or agreed to already.",
)


def _waiting_query(waiting: bool, actor: str | None) -> dict[str, Any]:
    """The registry's filters for ``--waiting`` and ``--as``; ``--as`` alone is a usage error."""
    if actor is not None and not waiting:
        raise click.UsageError("--as names the reviewer --waiting lists for: pass --waiting too")
    return {"waiting": True, **({"reviewer": actor} if actor is not None else {})} if waiting else {}


def _nothing(waiting: bool, actor: str | None, what: str) -> str:
    """What an empty listing says."""
    if not waiting:
        return f"no {what}"
    return f"no {what} wait for {actor if actor is not None else 'another reviewer'}"


_limit_option = click.option(
    "--limit", type=click.IntRange(1, 100), default=50, show_default=True, help="At most so many."
)


@click.command()
@_waiting_option
@_reviewer_option
@_limit_option
@click.option(
    "--after",
    default=None,
    metavar="ID",
    help="Only publishers after this id (the next page: the last id listed).",
)
@_json_option
@click.pass_context
def publishers(
    ctx: click.Context, waiting: bool, actor: str | None, limit: int, after: str | None, as_json: bool
) -> None:
    """List the publishers by id, a page at a time."""
    query = {**_waiting_query(waiting, actor), "limit": limit, **({"cursor": after} if after else {})}
    with _service(ctx) as service:
        page = service.list_publishers(query)

    def text() -> str:
        lines = [line for p in page.items for line in _publisher_lines(p)]
        lines = lines or [_nothing(waiting, actor, "publishers")]
        if page.next_cursor is not None:
            lines.append(f"{page.total} publishers in all; the next ones: add --after {page.next_cursor}")
        return "\n".join(lines)

    _emit(page, as_json, text)


@click.command("add-publisher")
@click.argument("publisher_id", metavar="ID")
@click.option("--name", required=True, help="Display name (zh-CN).")
@click.option("--name-en", default=None, help="English display name.")
@click.option("--kind", type=click.Choice(["department", "branch", "partner"]), required=True)
@click.option("--contact", required=True, help="An e-mail address that reaches the owner.")
@click.option("--verified", is_flag=True, help="The platform team checked who they are.")
@_actor_option
@_json_option
@click.pass_context
def add_publisher(
    ctx: click.Context,
    publisher_id: str,
    name: str,
    name_en: str | None,
    kind: str,
    contact: str,
    verified: bool,
    actor: str,
    as_json: bool,
) -> None:
    """Create a publisher (the platform team's job)."""
    new = {
        "id": publisher_id,
        "name": name,
        "name_en": name_en,
        "kind": kind,
        "contact": contact,
        "verified": verified,
    }
    with _service(ctx) as service:
        created = service.create_publisher({k: v for k, v in new.items() if v is not None}, actor=actor)
    _emit(created, as_json, lambda: f"publisher {created.id} created ({created.kind})")


def _publisher_switch(name: str, doc: str) -> click.Command:
    @click.argument("publisher_id", metavar="ID")
    @_actor_option
    @click.option("--reason", required=True, help="Why (kept in the audit log).")
    @_json_option
    @click.pass_context
    def command(ctx: click.Context, publisher_id: str, actor: str, reason: str, as_json: bool) -> None:
        with _service(ctx) as service:
            changed = getattr(service, name.replace("-", "_"))(publisher_id, actor=actor, reason=reason)
        if name == "suspend-publisher":
            state = "suspended: none of its plugins runs"
        elif changed.suspended:  # the first of two agreements: the switch stays on
            state = "stays suspended: your agreement is recorded, a second reviewer must reinstate it too"
        else:
            state = "reinstated"
        lines = [f"publisher {changed.id} {state}", *_publisher_pending(changed)]
        _emit(changed, as_json, lambda: "\n".join(lines))

    command.__doc__ = doc
    return click.command(name)(command)


suspend_publisher = _publisher_switch(
    "suspend-publisher",
    "Kill switch for a publisher: all its plugins stop (hosts drop them on their next poll), it cannot "
    "submit, its releases cannot be approved.",
)
reinstate_publisher = _publisher_switch(
    "reinstate-publisher",
    "Undo suspend-publisher: its approved releases run again. Not by its submitters nor by who "
    "suspended it; two people when an approved release of its requests a high-sensitivity scope.",
)


@click.command()
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--publisher", required=True, metavar="ID", help="The publisher submitting it.")
@_actor_option
@_json_option
@click.pass_context
def submit(ctx: click.Context, wheel: Path, publisher: str, actor: str, as_json: bool) -> None:
    """Submit a built wheel: store it, run every check, file it for review.

    The identical wheel again from the same publisher (a retry) files nothing: it shows the release
    filed the first time."""
    with _service(ctx) as service:
        submitted = service.submission(
            wheel.read_bytes(), filename=wheel.name, publisher_id=publisher, submitted_by=actor
        )
        release = submitted.release
        diff = _diff_or_none(service, release.id)
    if not submitted.created:
        click.echo(
            f"{wheel.name} was submitted before, identical, as release {release.id}: nothing new filed "
            "(to file a change, rebuild with a higher version)",
            err=True,
        )
    _emit(release, as_json, lambda: _release_text(release, diff, full=True))
    if release.state == "checks_failed":
        ctx.exit(1)


@click.command("list")
@click.option(
    "--state",
    type=click.Choice([state.value for state in ReleaseState]),
    default=None,
    help="Only releases in this state.",
)
@click.option(
    "--plugin", default=None, metavar="ID", help="Only releases of this plugin (also those filed unclaimed)."
)
@click.option("--publisher", default=None, metavar="ID", help="Only releases this publisher submitted.")
@_waiting_option
@_reviewer_option
@_limit_option
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    metavar="ID",
    help="Only releases after this id (the next page: the last id listed).",
)
@_json_option
@click.pass_context
def list_(
    ctx: click.Context,
    state: str | None,
    plugin: str | None,
    publisher: str | None,
    waiting: bool,
    actor: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """List releases, oldest first (the review queue with --state in_review).

    A release approved or agreed to resume by fewer people than it needs says who, and that it waits
    for another; --waiting lists only those (--as NAME: those NAME may complete)."""
    query: dict[str, Any] = {
        k: v for k, v in {"state": state, "plugin": plugin, "publisher": publisher}.items() if v
    }
    query.update(_waiting_query(waiting, actor))
    if after is not None:
        query["cursor"] = str(after)
    with _service(ctx) as service:
        page = service.list_releases({**query, "limit": limit})
        held = _held_by(service, page.items)

    def text() -> str:
        lines = [_release_text(r, publishers=held) for r in page.items]
        lines = lines or [_nothing(waiting, actor, "releases")]
        if page.next_cursor is not None:
            lines.append(f"{page.total} releases in all; the next ones: add --after {page.next_cursor}")
        return "\n".join(lines)

    _emit(page, as_json, text)


@click.command()
@click.argument("release_id", type=int)
@_json_option
@click.pass_context
def show(ctx: click.Context, release_id: int, as_json: bool) -> None:
    """A release with its checks, reviews, grant and diff."""
    with _service(ctx) as service:
        release = service.get_release(release_id)
        diff = _diff_or_none(service, release_id)
        held = _held_by(service, [release])
    warnings = list(placeholder_warnings(release.manifest))
    _emit(
        {"release": release, "diff": diff, "warnings": warnings},
        as_json,
        lambda: _release_text(release, diff, full=True, publishers=held),
    )


@click.command()
@click.argument("release_id", type=int)
@_json_option
@click.pass_context
def review(ctx: click.Context, release_id: int, as_json: bool) -> None:
    """What a reviewer needs: the release, what it adds since the last approval, and the checklist."""
    with _service(ctx) as service:
        release = service.get_release(release_id)
        diff = _diff_or_none(service, release_id)
        owner = service.get_publisher(release.publisher_id)
    suspended, held = owner.suspended, {owner.id: owner}

    def text() -> str:
        items = [f"  [ ] {key}: {label}" for key, label in REVIEW_CHECKLIST.items()]
        warning = (
            [f"publisher {release.publisher_id} is SUSPENDED: an approval is refused until it is reinstated"]
            if suspended
            else []
        )
        return "\n".join(
            [
                _release_text(release, diff, full=True, publishers=held),
                *warning,
                *_manifest_text(release.manifest),
                "checklist (approve --confirm):",
                *items,
            ]
        )

    warnings = list(placeholder_warnings(release.manifest))
    _emit(
        {"release": release, "diff": diff, "warnings": warnings, "checklist": dict(REVIEW_CHECKLIST)},
        as_json,
        text,
    )


@click.command()
@click.argument("release_id", type=int)
@_actor_option
@click.option(
    "--grant",
    "grants",
    multiple=True,
    metavar="SCOPE",
    help="Grant only these scopes (repeat); default: everything requested.",
)
@click.option(
    "--withhold",
    "withheld",
    multiple=True,
    metavar="SCOPE",
    help="Grant everything requested but this optional scope (repeat); instead of --grant.",
)
@click.option("--reason", "reasons", multiple=True, help="A note for the record (repeatable).")
@click.option("--confirm", is_flag=True, help="Confirm every checklist item (see `review ID`).")
@_json_option
@click.pass_context
def approve(
    ctx: click.Context,
    release_id: int,
    actor: str,
    grants: tuple[str, ...],
    withheld: tuple[str, ...],
    reasons: tuple[str, ...],
    confirm: bool,
    as_json: bool,
) -> None:
    """Approve a release in review (a second reviewer is needed for high-sensitivity scopes)."""
    if not confirm:
        raise click.UsageError("approving confirms the review checklist: pass --confirm after `review ID`")
    if grants and withheld:
        raise click.UsageError("pass --grant or --withhold, not both")
    with _service(ctx) as service:
        grant = list(grants) if grants else None
        if withheld:
            grant = _grant_without(service.get_release(release_id), withheld)
        release = service.approve(
            release_id,
            reviewer=actor,
            checklist=dict.fromkeys(REVIEW_CHECKLIST, True),
            reasons=reasons,
            grant=grant,
        )
        diff = _diff_or_none(service, release_id)
    _emit(release, as_json, lambda: _release_text(release, diff, full=True))


def _grant_without(release: ReleaseRead, withheld: tuple[str, ...]) -> list[str]:
    """Everything ``release`` requests but ``withheld``; the service refuses a required one."""
    requested = [*release.requested.required, *release.requested.optional]
    unknown = sorted(set(withheld) - set(requested))
    if unknown:
        raise RegistryError(f"--withhold: not requested by release {release.id}: {', '.join(unknown)}")
    return [scope for scope in requested if scope not in withheld]


@click.command()
@click.argument("release_id", type=int)
@_actor_option
@click.option("--reason", "reasons", multiple=True, required=True, help="Why (repeatable; at least one).")
@_json_option
@click.pass_context
def reject(ctx: click.Context, release_id: int, actor: str, reasons: tuple[str, ...], as_json: bool) -> None:
    """Reject a release in review, with reasons the publisher can act on."""
    with _service(ctx) as service:
        release = service.reject(release_id, reviewer=actor, reasons=reasons)
    _emit(release, as_json, lambda: _rejection_text(release, actor))


def _rejection_text(release: ReleaseRead, actor: str) -> str:
    """The heading and the reasons just recorded: what the publisher will read, for the reviewer to check."""
    recorded = next(
        (r for r in reversed(release.reviews) if r.decision == "reject" and r.reviewer == actor), None
    )
    reasons = recorded.reasons if recorded is not None else ()
    return "\n".join([_release_text(release), f"rejected by {actor}:", *(f"  - {r}" for r in reasons)])


def _transition(name: str, doc: str) -> click.Command:
    @click.argument("release_id", type=int)
    @_actor_option
    @click.option("--reason", required=True, help="Why (kept in the audit log).")
    @_json_option
    @click.pass_context
    def command(ctx: click.Context, release_id: int, actor: str, reason: str, as_json: bool) -> None:
        with _service(ctx) as service:
            release = getattr(service, name)(release_id, actor=actor, reason=reason)
        pending = name == "resume" and release.state == "suspended"
        note = "\nstill suspended: your agreement is recorded, a second reviewer must resume it too"
        _emit(release, as_json, lambda: _release_text(release) + (note if pending else ""))

    command.__doc__ = doc
    return click.command(name)(command)


suspend = _transition("suspend", "Kill switch: approved → suspended (running hosts stop it within seconds).")
resume = _transition(
    "resume",
    "Suspended → approved, with the grant it had. Not by its submitter nor by who suspended it; a "
    "release requesting a high-sensitivity scope needs two people to resume it.",
)
retire = _transition("retire", "Approved or suspended → retired, for good.")


@click.group(invoke_without_command=True)
@click.option(
    "--after", type=click.IntRange(min=0), default=0, show_default=True, metavar="SEQ",
    help="Only events after this sequence number (the next page: the last one listed).",
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most this many."
)
@click.option("--subject", default=None, help="Only events about this subject (e.g. release:3).")
@_json_option
@click.pass_context
def audit(ctx: click.Context, after: int, limit: int, subject: str | None, as_json: bool) -> None:
    """Print audit events; ``audit verify`` checks the whole hash chain."""
    if ctx.invoked_subcommand is not None:
        refuse_own_options(ctx)
        return
    with _service(ctx) as service:
        events = service.audit_events(after=after, limit=limit, subject=subject)
        # A full page says whether another event follows it: without a word, the oldest page read as all.
        more = len(events) == limit and bool(
            service.audit_events(after=events[-1].seq, limit=1, subject=subject)
        )
    _emit(events, as_json, lambda: _audit_text(events, more=more))


def _audit_text(events: Sequence[AuditEntry], *, more: bool = False) -> str:
    """One aligned line per event: the actor and action columns are as wide as their longest value
    (at least 16 and 20), so a long actor never pushes its row's columns out of line; when ``more``
    follow, a last line says how to read them."""
    if not events:
        return "no events"
    who_w = max(16, *(len(e.actor) for e in events))
    what_w = max(20, *(len(e.action) for e in events))
    lines = [
        f"{e.seq:>6} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<{who_w}} {e.action:<{what_w}} {e.subject}{_why(e)}"
        for e in events
    ]
    if more:
        lines.append(f"more events follow: add --after {events[-1].seq}")
    return "\n".join(lines)


def _why(event: AuditEntry) -> str:
    """The reason(s) an event records, after two spaces, or nothing."""
    found = event.payload.get("reasons") or event.payload.get("reason")
    if isinstance(found, list):
        found = "; ".join(str(r) for r in found)
    return f"  {found}" if found else ""


@audit.command()
@_json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Walk the audit chain; exit 1 and name the first broken row when it does not hold."""
    with _service(ctx) as service:
        broken = service.verify_audit_chain()
        seq, digest = service.audit_head()
    verdict = {"ok": broken is None, "broken": broken, "head": {"seq": seq, "hash": digest}}
    _emit(
        verdict,
        as_json,
        lambda: (
            f"audit chain intact: {seq} events, head {digest}"
            if broken is None
            else f"audit chain BROKEN at row {broken.seq}: {broken.reason}"
        ),
    )
    if broken is not None:
        ctx.exit(1)
