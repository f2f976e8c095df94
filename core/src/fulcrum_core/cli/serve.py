"""``fulcrum serve`` and ``fulcrum demo``: run the host, or migrate + seed + run it on SQLite."""

from __future__ import annotations

import os

import click
import uvicorn

from fulcrum_core.settings import load_settings

__all__ = ["demo", "serve"]


def _run(host: str, port: int, workers: int, config_file: str | None) -> None:
    if config_file:
        os.environ["FULCRUM_CONFIG"] = config_file
    # Workers re-import the factory; settings travel through the environment, read at call time.
    uvicorn.run(
        "fulcrum_core.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@click.command()
@click.option("--host", default=None, help="Interface to bind (default: settings, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: settings, 8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the API with the plugins installed in this environment."""
    settings = load_settings(config_file=ctx.obj["config_file"])
    _run(host or settings.host, port or settings.port, workers, ctx.obj["config_file"])


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--no-serve", is_flag=True, help="Migrate and seed, then exit.")
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, no_serve: bool) -> None:
    """Migrate and seed a local SQLite demo, then serve it with the three plugins on."""
    if ctx.invoked_subcommand is not None:
        return
    from fulcrum_core.demo import prepare_demo

    # The demo has no bank login behind it: the OAuth consent page offers the seeded customers instead.
    os.environ.setdefault("FULCRUM_OAUTH_DEV_LOGIN", "1")
    settings = load_settings(config_file=ctx.obj["config_file"])
    report = prepare_demo(settings)
    click.echo(report)
    if not no_serve:
        click.echo(f"Serving on http://{host}:{port}  (OpenAPI: http://{host}:{port}/schema)")
        _run(host, port, 1, ctx.obj["config_file"])


def _attach_demo_subcommands() -> None:
    from fulcrum_core.cli.demo_data import customers

    demo.add_command(customers)


_attach_demo_subcommands()
