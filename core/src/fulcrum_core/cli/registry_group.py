"""The ``fulcrum registry`` group, its commands (registry.py) imported only when one of them runs.

Importing them loads the registry, SQLAlchemy and the data layer (seconds on a busy machine), which
``fulcrum registry --help`` does not need: it lists the commands from :data:`_SHORT_HELP`.
"""

from __future__ import annotations

import click

from fulcrum_core.cli._groups import LazyGroup

__all__ = ["registry"]

_MODULE = "fulcrum_core.cli.registry"

_COMMANDS = {
    "add-publisher": f"{_MODULE}:add_publisher",
    "approve": f"{_MODULE}:approve",
    "audit": f"{_MODULE}:audit",
    "list": f"{_MODULE}:list_",
    "publishers": f"{_MODULE}:publishers",
    "reinstate-publisher": f"{_MODULE}:reinstate_publisher",
    "reject": f"{_MODULE}:reject",
    "resume": f"{_MODULE}:resume",
    "retire": f"{_MODULE}:retire",
    "review": f"{_MODULE}:review",
    "show": f"{_MODULE}:show",
    "submit": f"{_MODULE}:submit",
    "suspend": f"{_MODULE}:suspend",
    "suspend-publisher": f"{_MODULE}:suspend_publisher",
}
"""Command name → ``module:attribute`` of its click command."""

_SHORT_HELP = {
    "add-publisher": "Create a publisher (the platform team's job).",
    "approve": "Approve a release in review (a second reviewer is needed for high-sensitivity scopes).",
    "audit": "Print audit events; ``audit verify`` checks the whole hash chain.",
    "list": "List releases, oldest first (the review queue with --state in_review).",
    "publishers": "List the publishers by id, a page at a time.",
    "reinstate-publisher": "Undo suspend-publisher: its approved releases run again.",
    "reject": "Reject a release in review, with reasons the publisher can act on.",
    "resume": "Suspended → approved, with the grant it had.",
    "retire": "Approved or suspended → retired, for good.",
    "review": "What a reviewer needs: the release, what it adds since the last approval, and the checklist.",
    "show": "A release with its checks, reviews, grant and diff.",
    "submit": "Submit a built wheel: store it, run every check, file it for review.",
    "suspend": "Kill switch: approved → suspended (running hosts stop it within seconds).",
    "suspend-publisher": "Kill switch for a publisher: all its plugins stop (hosts drop them on their next "
    "poll), it cannot submit, its releases cannot be approved.",
}
"""Each command's one-line help as its docstring says it (a test keeps them equal)."""


@click.group(cls=LazyGroup, lazy=_COMMANDS, listed_help=_SHORT_HELP)
def registry() -> None:
    """The plugin registry, straight on the database (see each command's --help)."""
