"""``fulcrum plugin new`` bakes a plugin project from the template; ``fulcrum plugin check`` runs the
conformance kit on one.

Cookiecutter asks the questions itself (the same ones as ``cookiecutter template/``) and the
template's ``pre_gen_project`` hook rejects bad answers; this command finds the template, passes
``--no-input`` and ``--extra-context KEY=VALUE`` through for scripting, and turns cookiecutter's
exceptions into one-line errors.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shlex
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import msgspec

from fulcrum_core.cli._settings import settings_for

__all__ = ["check", "find_template", "plugin"]

_TEMPLATE_MARKER = Path("template") / "cookiecutter.json"


def find_template(start: Path | None = None) -> Path | None:
    """The ``template/`` directory of the Fulcrum checkout this package runs from, if there is one.

    A wheel install carries no template; then the caller passes ``--template`` (a path, or a git
    URL with ``--directory template``).
    """
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        if (parent / _TEMPLATE_MARKER).is_file():
            return parent / "template"
    return None


def _parse_extra(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``-x plugin_id=city-coupons -x search=no`` → a dict; refuse items without ``=``."""
    extra: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. plugin_id=city-coupons)", ctx, param)
        extra[key.strip()] = value
    return extra


def _questions(template: str, directory: str | None) -> list[str] | None:
    """The question keys of a local template; ``None`` when the template is remote."""
    root = Path(template) / (directory or "")
    try:
        context = json.loads((root / "cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [key for key in context if not key.startswith("_")]



@contextmanager
def _hook_scratch() -> Iterator[None]:
    """Cookiecutter writes each hook script to a temporary file and never removes it (two a bake): point
    ``tempfile`` at a directory of the bake's own while it runs, and remove that afterwards."""
    with tempfile.TemporaryDirectory(prefix="fulcrum-bake-") as scratch:
        before, tempfile.tempdir = tempfile.tempdir, scratch
        try:
            yield
        finally:
            tempfile.tempdir = before

@click.group()
def plugin() -> None:
    """Create and check plugin projects."""


@plugin.command("new")
@click.option(
    "--template", envvar="FULCRUM_TEMPLATE", metavar="PATH|URL",
    help="The cookiecutter template (default: FULCRUM_TEMPLATE, else template/ of this checkout).",
)
@click.option("--directory", metavar="DIR", help="The template's directory inside a repository URL.")
@click.option(
    "-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True, help="Where to create the project directory fulcrum-<plugin id>.",
)
@click.option("--no-input", is_flag=True, help="Ask nothing: use the defaults and --extra-context.")
@click.option(
    "-x", "--extra-context", "extra", multiple=True, metavar="KEY=VALUE", callback=_parse_extra,
    help="An answer given up front, e.g. -x plugin_id=city-coupons -x search=no; repeat for more.",
)
@click.option(
    "--replay-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Bake again from a project's recorded answers (its .cookiecutter.json).",
)
@click.option("--overwrite-if-exists", is_flag=True, help="Write into an existing project directory.")
def new(
    template: str | None,
    directory: str | None,
    output_dir: Path,
    no_input: bool,
    extra: dict[str, str],
    replay_file: Path | None,
    overwrite_if_exists: bool,
) -> None:
    """Create a plugin project: pyproject, manifest, example hooks, tests and a README."""
    try:
        from cookiecutter.exceptions import (
            CookiecutterException,
            FailedHookException,
            OutputDirExistsException,
            UndefinedVariableInTemplate,
        )
        from cookiecutter.main import cookiecutter
        from jinja2 import TemplateError
    except ImportError:  # a development tool, not a dependency of the server
        raise click.ClickException(
            "fulcrum plugin new needs cookiecutter: install it into this environment "
            "(uv pip install cookiecutter)"
        ) from None

    if template is None:
        found = find_template()
        if found is None:
            raise click.UsageError(
                "no plugin template found next to this installation: pass --template PATH "
                "(or a git URL with --directory template)"
            )
        template = str(found)
    if replay_file is not None and (extra or no_input):
        raise click.UsageError(
            "--replay-file already holds every answer: drop --no-input and --extra-context"
        )
    questions = _questions(template, directory)
    unknown = sorted(set(extra) - set(questions)) if questions is not None else []
    if unknown:
        raise click.BadParameter(
            f"unknown question(s) {', '.join(unknown)}; the template asks: {', '.join(questions or [])}",
            param_hint="'--extra-context'",
        )
    # Cookiecutter logs a traceback when a hook refuses the answers; the hook has already said why.
    cc_logger = logging.getLogger("cookiecutter")
    if not cc_logger.handlers:
        cc_logger.addHandler(logging.NullHandler())
    try:
        with _hook_scratch():
            project = cookiecutter(
                template,
                directory=directory,
                no_input=no_input,
                extra_context=extra or None,
                replay=str(replay_file) if replay_file is not None else None,
                output_dir=str(output_dir),
                overwrite_if_exists=overwrite_if_exists,
            )
    except FailedHookException:
        raise click.ClickException(
            "the template refused the answers; fix the problems listed above"
        ) from None
    except (UndefinedVariableInTemplate, TemplateError):
        # Cookiecutter renders answers as Jinja; its own message dumps the whole context.
        raise click.ClickException(
            "answers must not contain template syntax such as '{{', '{%' or '{#'"
        ) from None
    except OutputDirExistsException as exc:
        said = str(exc).removeprefix("Error: ")  # cookiecutter's own text starts so; click adds its own
        hint = "choose another plugin id or pass --overwrite-if-exists"
        raise click.ClickException(f"{said}; {hint}") from None
    except (CookiecutterException, ValueError) as exc:
        # ValueError: an answer that is not one of a choice's options, or not yes/no for a flag.
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the output directory, or a file in it, could not be written
        raise click.ClickException(_unwritable(exc)) from None
    _print_next_steps(Path(str(project)))


def _unwritable(exc: OSError) -> str:
    """One line for an ``OSError`` writing the project: where, and the system's reason. Cookiecutter
    raises its own ("Unable to create directory at PATH") from the system's, which says why."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    said = str(exc)
    where = cause.filename or said.removeprefix("Unable to create directory at ")
    reason = cause.strerror or said
    return (
        f"cannot create the project directory {where}: {reason}; pass an --output-dir you can write to"
    )


def _print_next_steps(project: Path) -> None:
    """What to run next, with this checkout's paths: fulcrum-sdk is on no package index, so the project's
    own environment gets it from the checkout (as docs/partner-guide.md does), and ``plugin check`` (the
    only step that imports and calls the hooks before review) and the registry commands run in the
    checkout, where its database is."""
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]
    wheel = project.absolute() / "dist" / f"{answers['__package']}-0.1.0-py3-none-any.whl"
    template = find_template()
    checkout = template.parent if template is not None else None
    publisher = answers["publisher_id"]
    click.echo(f"Created {project}")
    member = _workspace_member(checkout, project) if checkout is not None else None
    if checkout is not None and member is not None:
        _print_member_steps(checkout, member, answers)
        return
    click.echo("Next steps:")
    click.echo(f"  cd {shlex.quote(str(project.absolute()))}")
    if checkout is not None:
        sdk = shlex.quote(str(checkout / "sdk"))
        click.echo(f"  uv venv && uv pip install {sdk} -e . pytest && uv run --no-sync pytest")
    else:
        click.echo("  uv sync && uv run pytest    # needs fulcrum-sdk on your package index")
    click.echo("  uv build --wheel")
    submitter = answers.get("owner_email") or "you@example.com"
    check = f"fulcrum plugin check {shlex.quote(str(project.absolute()))}"
    submit = (
        f"fulcrum registry submit {shlex.quote(str(wheel))} "
        f"--publisher {shlex.quote(publisher)} --as {shlex.quote(submitter)}"
    )
    if checkout is not None:
        click.echo(f"  cd {shlex.quote(str(checkout))} && uv run {check}")
        click.echo(f"  uv run {submit}")
    else:
        click.echo(f"  {check}")
        click.echo(f"  {submit}")
    click.echo(
        f"The registry must know publisher {publisher} first "
        "(uv run fulcrum registry add-publisher; docs/partner-guide.md, step 6)."
    )


def _workspace_member(checkout: Path, project: Path) -> str | None:
    """``project``'s path in ``checkout`` (``plugins/fulcrum-x``) when the checkout's uv workspace takes
    it for a member, else None: there ``uv run`` uses the repository's environment, not the project's."""
    try:
        relative = project.resolve().relative_to(checkout.resolve()).as_posix()
        root = tomllib.loads((checkout / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # outside the checkout, or no readable pyproject.toml (TOMLDecodeError)
        return None
    workspace = root.get("tool", {}).get("uv", {}).get("workspace", {})
    members, excluded = workspace.get("members", []), workspace.get("exclude", [])
    if not isinstance(members, list) or not isinstance(excluded, list):
        return None
    if any(_glob_matches(relative, str(glob)) for glob in excluded):
        return None
    return relative if any(_glob_matches(relative, str(glob)) for glob in members) else None


def _glob_matches(relative: str, glob: str) -> bool:
    """Whether the path ``relative`` matches the workspace ``glob`` as uv reads it: ``*`` within one
    directory (``plugins/*`` takes ``plugins/x``, not ``plugins/team/x``)."""
    if "**" in glob:  # any depth
        return fnmatch.fnmatchcase(relative, glob)
    parts, pattern = relative.split("/"), glob.strip("/").split("/")
    return len(parts) == len(pattern) and all(map(fnmatch.fnmatchcase, parts, pattern))


def _print_member_steps(checkout: Path, member: str, answers: dict[str, str]) -> None:
    """The next steps for a project inside the checkout's workspace, all run from the checkout's root:
    ``uv sync --all-packages`` installs it there, and ``uv build`` writes its wheel to the root's
    ``dist/``."""
    distribution = f"fulcrum-{answers['plugin_id']}"  # the template's project name
    wheel = checkout / "dist" / f"{answers['__package']}-0.1.0-py3-none-any.whl"
    submitter = answers.get("owner_email") or "you@example.com"
    click.echo("Next steps (the project is a member of this repository's uv workspace):")
    click.echo(f"  cd {shlex.quote(str(checkout))}")
    click.echo(f"  uv sync --all-packages && uv run pytest {shlex.quote(member)}")
    click.echo(f"  uv build --package {shlex.quote(distribution)} --wheel")
    click.echo(f"  uv run fulcrum plugin check {shlex.quote(member)}")
    click.echo(
        f"  uv run fulcrum registry submit {shlex.quote(str(wheel))} "
        f"--publisher {shlex.quote(answers['publisher_id'])} --as {shlex.quote(submitter)}"
    )
    click.echo(
        f"The registry must know publisher {answers['publisher_id']} first "
        "(uv run fulcrum registry add-publisher; docs/partner-guide.md, step 6)."
    )


@plugin.command("check")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def check(ctx: click.Context, path: Path, as_json: bool) -> None:
    """Build PATH's wheel and run the registry's submission checks and the hook checks on it.

    Every hook is called for every demo persona within the deadlines in settings; exit status 1
    when any check fails.
    """
    from fulcrum_core.conformance import KitError, render_json, render_text, run_kit

    settings = settings_for(ctx)
    try:
        report = run_kit(path, deadlines=msgspec.structs.asdict(settings.deadlines))
    except KitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render_json(report) if as_json else render_text(report))
    if not report.passed:
        ctx.exit(1)
