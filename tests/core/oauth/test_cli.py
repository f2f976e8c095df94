"""``fulcrum oauth rotate-secret``: a new secret for a secret-based client, printed once."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.data.db import Database
from fulcrum_core.oauth.clients import ClientStore


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite database with one internal plugin's client; its URL."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    db = Database(url)
    db.upgrade()
    ClientStore(db).register(
        "plugin-pension",
        kind="plugin",
        plugin_id="pension",
        name_zh="养老",
        auth_method="client_secret_basic",
        grant_types=["client_credentials"],
        scopes=["pension:read"],
    )
    db.dispose()
    return url


def _client(url: str) -> object:
    db = Database(url)
    try:
        return ClientStore(db).get("plugin-pension")
    finally:
        db.dispose()


def test_the_new_secret_alone_goes_to_stdout_and_the_old_one_stops_working(database: str) -> None:
    """Standard output is the secret alone (``SECRET=$(...)``); the stored digest is the new one's."""
    before = _client(database)
    result = CliRunner().invoke(
        main, ["oauth", "rotate-secret", "plugin-pension"], env={"FULCRUM_DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert "\n" not in secret
    assert len(secret) >= 32
    assert "no longer works" in result.stderr
    after = _client(database)
    assert after.check_client_secret(secret)  # type: ignore[attr-defined]
    assert after.secret_hash != before.secret_hash  # type: ignore[attr-defined]


@pytest.mark.parametrize("client_id", ["plugin-pensoin", "fulcrum-app"], ids=["typo", "public-client"])
def test_a_client_without_a_secret_is_one_error_line(database: str, client_id: str) -> None:
    """A mistyped id, or a client that has no secret (the app uses PKCE), is an ``Error:`` line naming
    it (it was a traceback ending in NotFound), and nothing changes."""
    before = _client(database)
    result = CliRunner().invoke(
        main, ["oauth", "rotate-secret", client_id], env={"FULCRUM_DATABASE_URL": database}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no secret-based client {client_id!r}")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert _client(database) == before


def test_a_plugin_id_without_its_prefix_suggests_the_client(database: str) -> None:
    """``rotate-secret pension`` talked of partner keys: the client is ``plugin-pension``."""
    env = {"FULCRUM_DATABASE_URL": database}
    result = CliRunner().invoke(main, ["oauth", "rotate-secret", "pension"], env=env)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no secret-based client 'pension': did you mean plugin-pension? An internal plugin's backend "
        "is the client plugin-<plugin id>\n"
    )


def test_without_a_database_it_creates_none(tmp_path: Path) -> None:
    """Run where there is no database, it says so and creates none."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = CliRunner().invoke(
        main, ["oauth", "rotate-secret", "plugin-pension"], env={"FULCRUM_DATABASE_URL": url}
    )
    assert result.exit_code == 1
    assert "there is no database at" in result.stderr
    assert not (tmp_path / "none.db").exists()
