"""Demo seeding goes through submit → checks → two reviewers, once, and leaves the host out of dev mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.demo import prepare_demo
from fulcrum_core.registry_host.demo import DEMO_REVIEWERS, DEMO_SUBMITTER
from fulcrum_core.registry_host.host import open_registry
from fulcrum_core.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("uv") is None, reason="building the demo wheels needs uv")


def test_the_demo_plugins_are_approved_through_review_once(tmp_path: Path) -> None:
    """Each demo plugin is one approved release, submitted by the demo publisher and approved by two
    distinct reviewers; a second run adds nothing."""
    settings = Settings(state_dir=str(tmp_path / "state"), database_url=f"sqlite:///{tmp_path / 'demo.db'}")
    report = prepare_demo(settings)
    assert "release 1 approved" in report
    db = Database(settings.resolved_database_url())
    try:
        service = open_registry(settings, db)
        releases = service.list_releases({"limit": 100}).items
        assert sorted(r.plugin_id or "" for r in releases) == ["merchant-promo", "pension", "wealth-checkup"]
        for release in releases:
            assert release.state == "approved", release.failed_checks
            assert release.submitted_by == DEMO_SUBMITTER
            assert set(release.approvals) <= set(DEMO_REVIEWERS)
            assert release.granted_scopes is not None
        assert any(len(r.approvals) == 2 for r in releases)  # high-sensitivity scopes: two reviewers
        events = service.policy_version()
        prepare_demo(settings)
        assert service.policy_version() == events
        assert len(service.list_releases({"limit": 100}).items) == 3
        assert service.verify_audit_chain() is None
    finally:
        db.dispose()


def test_the_report_says_when_a_demo_publisher_is_suspended(tmp_path: Path) -> None:
    """A plugin whose publisher is suspended does not run: the report said "release N approved"."""
    settings = Settings(state_dir=str(tmp_path / "state"), database_url=f"sqlite:///{tmp_path / 'demo.db'}")
    prepare_demo(settings)
    db = Database(settings.resolved_database_url())
    try:
        open_registry(settings, db).suspend_publisher("citylife", actor="ops", reason="incident")
    finally:
        db.dispose()
    line = next(
        x for x in prepare_demo(settings).splitlines()[-1].split("; ") if x.startswith("merchant-promo")
    )
    assert "approved, but publisher citylife is suspended, so it does not run" in line
    assert "reinstate-publisher citylife" in line


def test_demo_help_names_the_database_it_uses() -> None:
    """``fulcrum demo`` migrates FULCRUM_DATABASE_URL, which its help called "a local SQLite demo"."""
    from click.testing import CliRunner
    from fulcrum_core.cli import main

    shown = CliRunner().invoke(main, ["demo", "--help"]).output
    assert "FULCRUM_DATABASE_URL" in shown
    assert "local SQLite demo" not in shown


@pytest.mark.postgres
def test_the_report_hides_the_database_password(postgres_url: str, tmp_path: Path) -> None:
    """The report names the database without its password: it printed the whole URL, secret and all, to
    the terminal and any log of the deploy."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    settings = Settings(state_dir=str(tmp_path / "state"), database_url=url)
    report = prepare_demo(settings)
    assert "s3cret-pw" not in report
    assert "Database ready at postgresql+psycopg://" in report
    assert ":***@" in report
