"""``fulcrum token issue``: prints only a token that the server's own verifier accepts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.cli import main
from fulcrum_core.settings import Settings, load_settings
from fulcrum_sdk.scopes import APP_SCOPES
from litestar.testing import TestClient


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file pointing state_dir into the test's directory, where a server has made its keys."""
    path = tmp_path / "fulcrum.toml"
    path.write_text(f'state_dir = "{(tmp_path / "state").as_posix()}"\nissuer = "https://fulcrum.test"\n')
    TokenService.from_settings(load_settings(config_file=path, environ={}))
    return path


@pytest.fixture
def settings(config: Path) -> Settings:
    """The same settings the server would load from ``config``."""
    return load_settings(config_file=config, environ={})


def _run(config: Path, *args: str) -> tuple[int, str, str]:
    argv = ["--config", str(config), "token", "issue", *args]
    result = CliRunner().invoke(main, argv, env={"FULCRUM_CONFIG": None})
    return result.exit_code, result.stdout, result.stderr


def test_customer_token_with_default_app_scopes(config: Path, settings: Settings) -> None:
    """--customer alone prints one line, a token for that customer with the app scopes, signed with the
    key file the server made."""
    code, out, err = _run(config, "--customer", "c-0755-001")
    assert (code, err) == (0, "")
    assert out.endswith("\n")
    assert out.count("\n") == 1
    principal = TokenService.from_settings(settings).verify(out.strip())
    assert principal.sub == "c-0755-001"
    assert principal.kind == "customer"
    assert principal.scopes == APP_SCOPES
    assert (Path(settings.state_dir) / "signing-keys.json").is_file()


def test_server_started_first_accepts_cli_token(config: Path, settings: Settings) -> None:
    """A server that created the key file first accepts a token the CLI mints afterwards (same key)."""
    server = TokenService.from_settings(settings)
    code, out, _ = _run(
        config, "--customer", "c-021-002", "--scope", "home:read search:read", "--scope", "feeds:read"
    )
    assert code == 0
    assert server.verify(out.strip()).scopes == {"home:read", "search:read", "feeds:read"}


def test_staff_token(config: Path, settings: Settings) -> None:
    """--staff with scopes mints a staff token with the chosen lifetime and client id."""
    code, out, _ = _run(
        config, "--staff", "ops-li", "--scope", "platform:read", "--ttl", "60", "--client-id", "tool"
    )
    assert code == 0
    principal = TokenService.from_settings(settings).verify(out.strip())
    assert (principal.sub, principal.kind, principal.client_id) == ("ops-li", "staff", "tool")
    assert principal.scopes == {"platform:read"}
    assert principal.expires_at - 60 <= int(time.time())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customer", "c-1", "--scope", "home:raed"], "unknown scope 'home:raed'"),
        (["--customer", "c-1", "--scope", "home:read bogus:x"], "unknown scope 'bogus:x'"),
        (["--customer", "c-1", "--scope", "registry:review"], "staff tokens only"),
        (["--staff", "ops-li"], "needs at least one --scope"),
        (["--customer", "c-1", "--staff", "ops-li"], "exactly one of"),
        ([], "exactly one of"),
        (["--customer", "c-1", "--ttl", "301"], "maximum lifetime of 300"),
        (["--customer", "c-1", "--ttl", "0"], "--ttl"),
        (
            ["--staff", "ops-li", "--scope", "platform:read", "--publisher", "pub"],
            "goes with --scope registry:publish",
        ),
        (["--customer", ""], "Error: --customer must not be empty\n"),
        (["--staff", " ", "--scope", "platform:read"], "Error: --staff must not be empty\n"),
        (
            ["--staff", "o" * 201, "--scope", "platform:read"],
            "Error: --staff is over the 200 characters the registry records of who acts",
        ),
        (["--staff", "ops\x00li", "--scope", "platform:read"], "Error: --staff must not hold a control"),
        (["--customer", "c-1\x00"], "Error: --customer must not hold a control character"),
        (["--customer", "c-1\n"], "Error: --customer must not hold a control character"),
        (["--customer", "c-1", "--client-id", ""], "Error: --client-id must not be empty\n"),
        # A publisher id no publisher can have: the token was issued, and every upload refused later.
        (
            ["--staff", "ops-li", "--scope", "registry:publish", "--publisher", "City-Coupons"],
            "Invalid value for '--publisher': 'City-Coupons' is no publisher id: 2 to 50 lowercase letters",
        ),
        (
            ["--staff", "ops-li", "--scope", "registry:publish", "--publisher", "city coupons"],
            "Invalid value for '--publisher': 'city coupons' is no publisher id",
        ),
    ],
)
def test_usage_errors_name_the_problem(config: Path, args: list[str], message: str) -> None:
    """Bad options are click usage errors (exit 2) naming the culprit, and nothing goes to stdout."""
    code, out, err = _run(config, *args)
    assert code == 2
    assert out == ""
    assert message in err


def test_bad_settings_file_is_reported(tmp_path: Path) -> None:
    """A settings file with a bad value fails with a message instead of a traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("access_token_ttl_seconds = 9999\n")
    code, out, err = _run(bad, "--customer", "c-1")
    assert code == 1
    assert out == ""
    assert "access_token_ttl_seconds" in err


def test_running_app_accepts_cli_tokens(config: Path, settings: Settings) -> None:
    """The app built by create_app on the same settings serves a request carrying a CLI-minted token,
    and refuses the same request without it."""
    app = create_app(settings, runtime=build_runtime(settings, load_entry_points=False))
    code, out, _ = _run(config, "--staff", "ops-li", "--scope", "platform:read")
    assert code == 0
    with TestClient(app) as client:
        assert client.get("/v1/plugins").status_code == 401
        r = client.get("/v1/plugins", headers={"Authorization": f"Bearer {out.strip()}"})
        assert r.status_code == 200, r.text


def test_no_signing_keys_is_one_line_and_creates_none(tmp_path: Path) -> None:
    """Where no server has made its keys (another directory), no token is minted with new keys the server
    would not accept: one Error: line says where to run it, and no state directory is created."""
    config = tmp_path / "fulcrum.toml"
    config.write_text(f'state_dir = "{(tmp_path / "state").as_posix()}"\n')
    code, out, err = _run(config, "--customer", "c-0755-001")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: there are no signing keys at {tmp_path / 'state' / 'signing-keys.json'}: the server makes "
        "them when it first starts (`fulcrum demo`, `fulcrum serve`); run this where it runs, or set "
        "FULCRUM_STATE_DIR (or state_dir in --config) to its state directory\n"
    )
    assert not (tmp_path / "state").exists()


def test_a_customer_the_demo_data_does_not_know_is_a_warning(config: Path, settings: Settings) -> None:
    """A token for a customer number the demo data lacks is still printed (to try the refusal), with a
    warning saying the server answers it 403 customer.unknown and where the customers are listed."""
    code, out, err = _run(config, "--customer", "nobody")
    assert code == 0
    assert TokenService.from_settings(settings).verify(out.strip()).sub == "nobody"
    assert err == (
        "warning: the demo data has no customer 'nobody' (`fulcrum demo customers` lists them): "
        "the server answers this token 403 customer.unknown\n"
    )


def test_a_publishing_token_without_its_publisher_is_issued_with_a_warning(config: Path) -> None:
    """Without ``--publisher`` a ``registry:publish`` token reads the catalogue but submits for nobody
    (the registry documents it so): issued, with a warning saying what it cannot do."""
    code, out, err = _run(config, "--staff", "dev", "--scope", "registry:publish")
    assert code == 0, err
    assert out.strip()
    assert "can submit for no publisher" in err
