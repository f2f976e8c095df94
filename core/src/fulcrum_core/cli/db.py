"""``fulcrum db``: migrate the platform database, check it against the models, reconcile the journal,
show what each plugin keeps in its storage."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click
import msgspec

from fulcrum_core.cli._settings import existing_database, settings_for
from fulcrum_core.settings import Settings

if TYPE_CHECKING:
    from fulcrum_core.data.db import Database

# alembic, SQLAlchemy and the journal are imported where a command uses them: `db --help` loads none.

__all__ = ["db"]


def utcnow() -> datetime:
    """The data layer's clock (what the journal compares against)."""
    from fulcrum_core.data.types import utcnow as now

    return now()


def _database(ctx: click.Context) -> Database:
    from fulcrum_core.data.db import Database

    settings = settings_for(ctx)
    return Database(settings.resolved_database_url())


def _existing(ctx: click.Context) -> Database:
    """The database for a command that only reads it: opening a missing SQLite file would create it."""
    return existing_database(settings_for(ctx))


def _where(database: Database) -> str:
    return database.url.render_as_string(hide_password=True)


@click.group()
def db() -> None:
    """The platform database (one alembic history for every table)."""


def _revision_ids(database: Database) -> frozenset[str]:
    """Every revision id the packaged migrations know (``--revision`` may also be a prefix, ``heads``,
    ``X@head`` or ``X+1``: only a whole id is said to be passed)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(database.alembic_config())
    return frozenset(r.revision for r in script.walk_revisions())


def _migrate(
    database: Database, done: str, step: Callable[[Database], None], *, asked: str | None = None
) -> None:
    """Run ``step`` (an upgrade or a downgrade) and say where the database went from and to; a migration
    refusing (``RuntimeError`` with its reason) is one error line, and changes nothing."""
    try:
        before = database.current()
        try:
            step(database)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        after = database.current()
    finally:
        database.dispose()
    if before == after and asked is not None and asked != after and asked in _revision_ids(database):
        # An upgrade to a revision the database is already past does nothing: say how to go back.
        click.echo(
            f"{_where(database)}: at {after or 'base'}, already past {asked}; nothing to do (to go back to "
            f"it: fulcrum db downgrade {asked})"
        )
    elif before == after:
        click.echo(f"{_where(database)}: already at {after or 'base'}; nothing to do")
    else:
        click.echo(f"{_where(database)}: {done} from {before or 'an empty database'} to {after or 'base'}")


def _named_revision(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A revision is named: an empty one (an unset variable in a deploy script) reached alembic, whose
    assertion ended the command with a traceback."""
    if not value.strip():
        name = param.opts[0] if isinstance(param, click.Option) else (param.name or "").upper()
        raise click.BadParameter(
            "must name a revision: an id (`fulcrum db current` names them), `head`, `base` or a step (`-1`)",
            param_hint=name,
        )
    return value


@db.command()
@click.option(
    "--revision", default="head", show_default=True, callback=_named_revision, help="Target revision."
)
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Apply the migrations shipped with the host (settings decide the database)."""
    _migrate(_database(ctx), "upgraded", lambda database: database.upgrade(revision), asked=revision)


@db.command(context_settings={"ignore_unknown_options": True})  # "-1" is a revision, not an option
@click.argument("revision", callback=_named_revision)
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Undo the migrations after REVISION (``-1``: the newest one; ``base``: every table goes).

    A downgrade drops what later revisions added; one that would lose a decision refuses, saying why.
    """
    _migrate(_database(ctx), "downgraded", lambda database: database.downgrade(revision))


@db.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Print the revision the database is at, and the head it could be upgraded to."""
    database = _existing(ctx)
    try:
        at = database.current() or "base"
        click.echo(f"{_where(database)}: at {at}; head {', '.join(database.heads())}")
    finally:
        database.dispose()


@db.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Fail when the models and the migrations disagree (run after ``upgrade``)."""
    from alembic.script import ScriptDirectory
    from alembic.util import AutogenerateDiffsDetected

    database = _existing(ctx)
    try:
        at, heads = database.current(), database.heads()
        script = ScriptDirectory.from_config(database.alembic_config())
        behind = at is None or at in {r.revision for r in script.walk_revisions()}
        if at not in heads and behind:  # alembic says only "Target database is not up to date."
            raise click.ClickException(
                f"{_where(database)}: the database is at {at or 'base'}, not at the migrations' head "
                f"{', '.join(heads)}: run `fulcrum db upgrade`, then `fulcrum db check` again"
            )
        database.check()
    except AutogenerateDiffsDetected as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    click.echo("models and migrations agree")


def _resolve_unknown(settings: Settings, not_asked: dict[str, str]) -> list[tuple[str, str]]:
    """The host as ``fulcrum serve`` builds it (installed plugins, the registry's policy applied),
    asked to settle every transaction of unknown outcome; ``not_asked`` gets why, for those it could
    not ask about."""
    import asyncio

    from fulcrum_core.app import build_runtime
    from fulcrum_core.registry_host import registry_of

    runtime = build_runtime(settings)
    try:
        watcher = registry_of(runtime).watcher
        if watcher is not None:
            watcher.refresh(force=True)
        return asyncio.run(runtime.transactions.resolve_unknown(not_asked=not_asked))
    finally:
        runtime.dispatcher.close()
        runtime.db.dispose()


def _next_revision_id(database: Database, message: str) -> str:
    from alembic.script import ScriptDirectory

    today = datetime.now(UTC).strftime("%Y%m%d")
    taken = [r.revision for r in ScriptDirectory.from_config(database.alembic_config()).walk_revisions()]
    number = 1 + sum(1 for r in taken if r.startswith(today + "_"))
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:30] or "change"
    return f"{today}_{number:02d}_{slug}"


def _at_head(settings: Settings) -> Database:
    """The settings' database when it exists and is at head; otherwise one ``Error:`` line saying so."""
    database = existing_database(
        settings,
        "the database must be at head first; create one with `fulcrum db upgrade` "
        "(or set FULCRUM_DATABASE_URL to one at head)",
    )
    try:
        at, heads = database.current(), database.heads()
    except BaseException:
        database.dispose()
        raise
    if at not in heads:
        database.dispose()
        raise click.ClickException(
            f"the database must be at head first: it is at {at or 'base'}, head {', '.join(heads)}; "
            "run `fulcrum db upgrade`, then `fulcrum db revision` again"
        )
    return database


@db.command()
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.pass_context
def revision(ctx: click.Context, message: str) -> None:
    """Autogenerate a date-prefixed migration from the models (for developers; review it!).

    The database must be at head: a missing or older one would be diffed into a migration of every
    table it lacks, so both are one ``Error:`` line, and no database is created here."""
    from alembic import command

    database = _at_head(settings_for(ctx))
    try:
        rev_id = _next_revision_id(database, message)
        cfg = database.alembic_config()
        with database.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    finally:
        database.dispose()
    click.echo(f"wrote migrations/versions/{rev_id}.py")


@db.command("reconcile")
@click.option(
    "--older-than",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds a pending transaction may wait before it is marked unknown "
    "(default: twice the execute deadline plus a minute).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--resolve",
    is_flag=True,
    help="After marking abandoned ones unknown, ask each unknown transaction's plugin again (same "
    "request and idempotency key) and journal its answer; needs the plugins installed here.",
)
@click.pass_context
def reconcile_transactions(ctx: click.Context, older_than: int | None, as_json: bool, resolve: bool) -> None:
    """Mark abandoned pending transactions unknown, end the never-asked ones (503, retryable) nobody
    retried within the retry window as failed, and list every transaction of unknown outcome; with
    --resolve, ask their plugins about them in between (the rows just marked included)."""
    from fulcrum_core.problem_types import problem_base
    from fulcrum_core.transactions.journal import Journal
    from fulcrum_core.transactions.reconcile import reconcile, unknown_views

    settings = settings_for(ctx)
    database = existing_database(settings)
    grace = (
        timedelta(seconds=older_than)
        if older_than
        else timedelta(milliseconds=2 * settings.deadlines.execute_transaction, minutes=1)
    )
    try:
        journal = Journal(database)
        report = reconcile(
            journal,
            older_than=grace,
            now=utcnow(),
            retry_window_seconds=settings.transaction_retry_window_seconds,
            problem_base=problem_base(settings),
        )
        if resolve:
            not_asked: dict[str, str] = {}
            for tx_id, status in _resolve_unknown(settings, not_asked):
                if tx_id in not_asked:
                    click.echo(f"not asked: {tx_id}  {not_asked[tx_id]}", err=as_json)
                else:
                    click.echo(f"asked again: {tx_id}  {status}", err=as_json)
            report = msgspec.structs.replace(report, unknown=unknown_views(journal))
    finally:
        database.dispose()
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
        return
    click.echo(
        f"marked unknown: {len(report.marked_unknown)}; unknown in total: {len(report.unknown)}; "
        f"ended past their retry window: {len(report.expired)}"
    )
    for view in report.unknown:
        click.echo(
            f"  {view.id}  {view.type}  {view.plugin}  {view.amount_fen} fen  since {view.created_at:%F %T}"
        )


@db.command("storage")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per plugin.")
@click.option(
    "--recount", "recount_first", is_flag=True,
    help="Count each plugin's rows first and correct its usage (after a rolling deploy across the "
    "migration that added it, when older workers stored without counting). Safe while plugins write, "
    "but a plugin's growing writes wait while its rows are counted (about 1 s a million documents).",
)
@click.pass_context
def storage_usage(ctx: click.Context, as_json: bool, recount_first: bool) -> None:
    """What each plugin keeps in its storage against its quota (storage_quota, or its own under
    [plugins.ID]): documents, their bytes, counters. A measure at 90 % or more is marked."""
    from fulcrum_core.data.quota import MEASURES, recount, usage

    settings = settings_for(ctx)
    database = existing_database(settings)
    try:
        held = recount(database) if recount_first else usage(database)
    finally:
        database.dispose()
    if not held and not as_json:
        click.echo("no plugin has written to its storage")
    for row in held:
        quota = settings.quota_of(row.plugin_id)
        if as_json:
            limits = {m: getattr(quota, m) for m in MEASURES}
            click.echo(msgspec.json.encode({**msgspec.structs.asdict(row), "quota": limits}).decode())
            continue
        parts = []
        for measure in MEASURES:
            used, limit = getattr(row, measure), getattr(quota, measure)
            shown = _bytes if measure == "document_bytes" else "{:,}".format
            full = " (!)" if used >= limit * 0.9 else ""
            parts.append(f"{measure} {shown(used)} of {shown(limit)}{full}")
        click.echo(f"{row.plugin_id}: " + ", ".join(parts))


def _bytes(count: int) -> str:
    """``count`` bytes for a person: ``386 B``, ``1.5 MiB``, ``4.0 GiB``."""
    size, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
