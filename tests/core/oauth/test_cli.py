"""``fulcrum oauth rotate-secret`` and ``add-staff-client``: a client's secret, printed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_a_staff_client_added_by_the_cli_gets_its_own_tokens_for_metrics(
    make_app: Any, settings: Any
) -> None:
    """``add-staff-client prometheus --scope platform:read`` prints the secret alone; with it the client
    gets a token by client_credentials at the real token endpoint, and that token scrapes /metrics. It
    may not ask for a scope it was not given, and a second registration of the id changes nothing."""
    app = make_app()
    env = {"FULCRUM_DATABASE_URL": settings.database_url, "FULCRUM_STATE_DIR": settings.state_dir}
    add = ["oauth", "add-staff-client", "prometheus", "--scope"]
    added = CliRunner().invoke(main, [*add, "platform:read"], env=env)
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert "\n" not in secret
    assert "grant_type=client_credentials" in added.stderr
    auth = ("prometheus", secret)
    token = app.client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "platform:read"
    scrape = app.client.get("/metrics", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert scrape.status_code == 200
    beyond = app.client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "registry:review"}, auth=auth
    )
    assert beyond.status_code == 400
    again = CliRunner().invoke(main, [*add, "branch:read"], env=env)
    assert again.exit_code == 1
    assert "exists already" in again.stderr
    still = app.client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert still.status_code == 200  # the first secret still works


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--scope", "registry:publish"], "name no publisher"),
        (["--scope", "location:city"], "'location:city' is not a staff scope"),
        ([], "give at least one"),
    ],
    ids=["publish", "customer-scope", "none"],
)
def test_a_staff_client_needs_staff_scopes(database: str, args: list[str], said: str) -> None:
    """Scopes a staff tool cannot use are usage errors naming ``--scope``, and nothing is registered."""
    result = CliRunner().invoke(
        main, ["oauth", "add-staff-client", "tool", *args], env={"FULCRUM_DATABASE_URL": database}
    )
    assert result.exit_code == 2
    assert "--scope" in result.stderr
    assert said in result.stderr
    db = Database(database)
    try:
        assert ClientStore(db).get("tool") is None
    finally:
        db.dispose()


@pytest.mark.parametrize("client_id", ["ops:metrics", "ops metrics", "ops%3Ametrics"])
def test_a_staff_client_id_must_survive_basic_authentication(database: str, client_id: str) -> None:
    """An id the token endpoint could not read back from HTTP Basic authentication (``:`` separates it
    from the secret, ``%`` is decoded, a space breaks the printed curl line) is a usage error naming
    CLIENT_ID, and nothing is registered."""
    result = CliRunner().invoke(
        main, ["oauth", "add-staff-client", client_id, "--scope", "platform:read"],
        env={"FULCRUM_DATABASE_URL": database},
    )
    assert result.exit_code == 2
    assert "CLIENT_ID" in result.stderr
    assert "letters, digits" in result.stderr
    db = Database(database)
    try:
        assert ClientStore(db).get(client_id) is None
    finally:
        db.dispose()
