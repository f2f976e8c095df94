"""``fulcrum branch check`` judges files against the registry's approved releases when it has any."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.data.db import Database
from fulcrum_core.demo import prepare_demo
from fulcrum_core.registry_host.host import open_registry
from fulcrum_core.settings import Settings

REPO_BRANCHES = Path(__file__).resolve().parents[3] / "branches"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings through the environment, as the CLI reads them: a database under the test's directory."""
    values = {
        "FULCRUM_STATE_DIR": str(tmp_path / "state"),
        "FULCRUM_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _check(*files: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["branch", "check", *map(str, files)])
    return result.exit_code, result.stdout, result.stderr


def test_without_approved_releases_it_falls_back_to_installed_plugins_and_says_so(
    env: dict[str, str],
) -> None:
    """An empty database file, or a migrated registry that knows no plugin yet, is no error: installed
    plugins stand in, with a warning."""
    Path(env["FULCRUM_DATABASE_URL"].removeprefix("sqlite:///")).touch()
    code, out, err = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert code == 0, out + err
    assert "the registry knows no plugin yet" in err
    db = Database(env["FULCRUM_DATABASE_URL"])
    db.upgrade()
    db.dispose()
    code, out, err = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert code == 0, out + err
    assert "the registry knows no plugin yet" in err


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://nobody@127.0.0.1:1/nothing", "unmigrated"],
    ids=["unreachable", "unmigrated"],
)
def test_a_registry_it_cannot_read_fails_the_check(
    env: dict[str, str], tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that is down, or one with data but no registry in it, fails the check (exit 1) saying
    so: the check printed a warning, fell back to the installed plugins and passed, so a CI gate
    passed without the registry's word."""
    if url == "unmigrated":
        other = tmp_path / "other.db"
        import sqlite3

        conn = sqlite3.connect(other)
        conn.execute("create table unrelated (x)")
        conn.commit()
        conn.close()
        url = f"sqlite:///{other}"
    monkeypatch.setenv("FULCRUM_DATABASE_URL", url)
    code, out, err = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert code == 1, out + err
    assert "cannot read the registry at Database(" in err
    assert "--approved FILE" in err
    assert "ok:" not in out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="seeding the demo registry builds wheels with uv")
def test_a_suspended_release_makes_the_file_that_enables_it_invalid(env: dict[str, str]) -> None:
    """With the demo's approvals the shipped files pass; suspend merchant-promo and 0755.toml fails."""
    settings = Settings(state_dir=env["FULCRUM_STATE_DIR"], database_url=env["FULCRUM_DATABASE_URL"])
    prepare_demo(settings)
    code, out, err = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert (code, err) == (0, ""), out + err
    db = Database(settings.resolved_database_url())
    try:
        service = open_registry(settings, db)
        (release,) = service.active_policy()["merchant-promo"].values()  # the installed version
        service.suspend(release.release_id, actor="carol", reason="incident")
    finally:
        db.dispose()
    code, out, _ = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert code == 1
    assert "0755.toml: plugins.merchant-promo" in out
    # With every release suspended the registry still decides: it fell back to the installed plugins.
    db = Database(settings.resolved_database_url())
    try:
        service = open_registry(settings, db)
        for versions in service.active_policy().values():
            for release in versions.values():
                service.suspend(release.release_id, actor="carol", reason="incident")
        assert service.active_policy() == {}
    finally:
        db.dispose()
    code, out, err = _check(REPO_BRANCHES / "hq.toml", REPO_BRANCHES / "0755.toml")
    assert code == 1, out + err
    assert "0755.toml: plugins.merchant-promo" in out
    assert "installed" not in err
