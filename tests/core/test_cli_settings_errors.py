"""Every command meets bad settings and an unusable database with one ``Error:`` line, never a traceback;
``fulcrum demo`` serves where the settings say."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main, serve
from fulcrum_core.settings import SettingsError, load_settings


def _fails(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # click's clean exit, no traceback
    assert "Traceback" not in result.output
    line: str = result.output.strip()
    assert line.startswith("Error: ")
    return line


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    """--config pointing nowhere names the file."""
    missing = tmp_path / "nope.toml"
    line = _fails(["--config", str(missing), "db", "current"])
    expected = f"cannot read the settings file {missing}: No such file or directory"
    assert line == f"Error: cannot load settings: {expected}"


def test_a_bad_value_in_the_config_file_names_the_file_and_key(tmp_path: Path) -> None:
    """A wrong type in the TOML file names the file, the key and what was expected."""
    config = tmp_path / "fulcrum.toml"
    config.write_text('port = "abc"\n', encoding="utf-8")
    line = _fails(["--config", str(config), "token", "issue", "--customer", "c-1"])
    assert line == f"Error: cannot load settings: {config} (port): Expected `int`, got `str`"


def test_a_bad_variable_names_the_variable(tmp_path: Path) -> None:
    """A wrong FULCRUM_* value names the variable and the setting it feeds."""
    line = _fails(["serve"], env={"FULCRUM_PORT": "abc"})
    assert line == "Error: cannot load settings: FULCRUM_PORT (port): Expected `int`, got `str`"


def test_a_bad_table_variable_names_the_variable_and_key() -> None:
    """``FULCRUM_<TABLE>__<KEY>`` with a wrong value: one line naming it and the key it sets."""
    line = _fails(["serve"], env={"FULCRUM_DEADLINES__HOME_SLOT_OFFERS": "soon"})
    expected = "FULCRUM_DEADLINES__HOME_SLOT_OFFERS (deadlines.home_slot_offers): Expected `int`, got `str`"
    assert line == f"Error: cannot load settings: {expected}"


def test_a_slot_variable_is_an_error_naming_it_and_the_file_table(tmp_path: Path) -> None:
    """``FULCRUM_SLOTS__<SLOT>__<KEY>`` sets nothing (slots are tuned in the file): one line saying so, not a
    command run with the built-in slot the operator meant to change."""
    (tmp_path / "fulcrum.db").touch()  # `db current` reads a database; it creates none
    env = {"FULCRUM_STATE_DIR": str(tmp_path), "FULCRUM_SLOTS__HOME_BANNER_V1__CAPACITY": "3"}
    line = _fails(["db", "current"], env=env)
    expected = (
        "FULCRUM_SLOTS__HOME_BANNER_V1__CAPACITY (slots): no variable sets slots; the settings file "
        '(FULCRUM_CONFIG or --config) does, with a table [slots."<id>"] (e.g. [slots."home.banner/v1"] with '
        "capacity = 3)"
    )
    assert line == f"Error: cannot load settings: {expected}"


@pytest.mark.parametrize(
    ("variable", "meant"),
    [("FULCRUM_PROT", "FULCRUM_PORT"), ("FULCRUM_DATABSE_URL", "FULCRUM_DATABASE_URL")],
)
def test_a_misspelt_variable_is_a_warning_naming_the_setting(
    tmp_path: Path, variable: str, meant: str
) -> None:
    """``FULCRUM_PROT=8125`` used to be ignored without a word, leaving the default port or database."""
    env = {"FULCRUM_STATE_DIR": str(tmp_path), variable: "x", "FULCRUM_SECRET_PROMO_TOKEN": "s"}
    (tmp_path / "fulcrum.db").touch()  # `db current` reads a database; it creates none
    result = CliRunner().invoke(main, ["db", "current"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"warning: {variable} is not a setting and is ignored; did you mean {meant}?\n"


def test_a_config_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    """Text that is not TOML names the file and the parser's complaint."""
    config = tmp_path / "fulcrum.toml"
    config.write_text("port = = 1\n", encoding="utf-8")
    assert _fails(["--config", str(config), "db", "current"]).startswith(
        f"Error: cannot load settings: {config}: not valid TOML"
    )


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A settings file saved with a UTF-8 byte-order mark is read as without it (it was not TOML)."""
    config = tmp_path / "fulcrum.toml"
    config.write_bytes(b"\xef\xbb\xbfport = 8125\r\n")
    assert load_settings(config_file=config, environ={}).port == 8125


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("prot = 9000\n", "Object contains unknown field `prot`; did you mean port?"),
        (
            "[rate_limit]\nrequets = 1\n",
            "(rate_limit): Object contains unknown field `requets`; did you mean requests?",
        ),
        ("zzz = 1\n", "Object contains unknown field `zzz`"),
        (
            "[plugins.pension]\nenabeld = false\n",
            "(plugins[...]): Object contains unknown field `enabeld`; did you mean enabled?",
        ),
        (
            "[plugins.pension.storage_quota]\ndocumets = 1\n",
            "(plugins[...].storage_quota): Object contains unknown field `documets`; did you mean documents?",
        ),
        (
            '[slots."home.banner/v1"]\ncapacty = 3\n',
            '(slots."home.banner/v1"): Object contains unknown field `capacty`; did you mean capacity?',
        ),
        (
            '[slots."home.popup/v1"]\nzzz = 3\n',
            '(slots."home.popup/v1"): Object contains unknown field `zzz`',
        ),
    ],
)
def test_a_mistyped_key_in_the_config_file_gets_a_suggestion(tmp_path: Path, text: str, said: str) -> None:
    """A near miss of a settings key in the file is told the key it meant, as a mistyped ``FULCRUM_*``
    variable is; it only said the field was unknown."""
    config = tmp_path / "fulcrum.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config, environ={})
    assert str(caught.value).endswith(said)


def test_nested_keys_are_named_with_their_path(tmp_path: Path) -> None:
    """A bad value below the top level is named by its dotted path."""
    config = tmp_path / "fulcrum.toml"
    config.write_text("[rate_limit]\nrequests = -1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"\(rate_limit\.requests\): must be at least 1"):
        load_settings(config_file=config, environ={})


def test_an_unusable_database_is_one_line() -> None:
    """A database that cannot be opened is one line with a hint, for any command that uses it."""
    url = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"  # the discard port: nothing listens
    line = _fails(["db", "current"], env={"FULCRUM_DATABASE_URL": url})
    assert line.startswith("Error: the database refused: ")
    assert "fulcrum db upgrade" in line


def test_demo_serves_where_the_settings_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FULCRUM_HOST and FULCRUM_PORT place the demo as they place ``serve``; --port still wins."""
    served: list[tuple[Any, ...]] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: served.append(args[:2]))
    monkeypatch.setattr("fulcrum_core.demo.prepare_demo", lambda settings: "seeded")
    monkeypatch.chdir(tmp_path)
    env = {"FULCRUM_PORT": "8123", "FULCRUM_HOST": "127.0.0.2"}
    first = CliRunner().invoke(main, ["demo"], env=env)
    second = CliRunner().invoke(main, ["demo", "--port", "8124"], env=env)
    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert served == [("127.0.0.2", 8123), ("127.0.0.2", 8124)]
    assert "Serving on http://127.0.0.2:8123" in first.output
    assert "FULCRUM_ISSUER=http://127.0.0.2:8123" in first.output  # the issuer still says 8000


@contextmanager
def _listening() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on while the block runs."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_demo_on_a_busy_port_says_so_first_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port something listens on: the demo printed "Serving on ..." (after migrating and seeding)
    before uvicorn's bind error; it now names the port as in use before anything else, exit 1."""
    served: list[object] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: served.append(args))
    monkeypatch.setattr("fulcrum_core.demo.prepare_demo", lambda settings: served.append(settings) or "")
    monkeypatch.chdir(tmp_path)
    with _listening() as port:
        ran = CliRunner().invoke(main, ["demo", "--port", str(port)], env={"FULCRUM_HOST": "127.0.0.1"})
    assert ran.exit_code == 1, ran.output
    assert ran.output.startswith(f"Error: port {port} on 127.0.0.1 is in use")
    assert "Serving on" not in ran.output
    assert served == []
    seeded_only = CliRunner().invoke(main, ["demo", "--port", str(port), "--no-serve"])
    assert seeded_only.exit_code == 0, seeded_only.output  # nothing to bind: the port does not matter


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_state_directory_that_cannot_be_made_is_named_before_serving(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state directory under a file (or on a read-only disk): one line naming it and the setting, before
    anything runs; the worker died building the app with a FileNotFoundError traceback (exit 3)."""
    served: list[object] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: served.append(args))
    monkeypatch.setattr("fulcrum_core.demo.prepare_demo", lambda settings: served.append(settings) or "")
    (tmp_path / "a-file").touch()
    state = tmp_path / "a-file" / "state"
    line = _fails([command, "--port", "8219"], env={"FULCRUM_STATE_DIR": str(state)})
    expected = f"Error: the state directory {state} (state_dir, FULCRUM_STATE_DIR) cannot be made: "
    assert line.startswith(expected), line
    assert served == []


def test_a_mistyped_command_gets_a_suggestion() -> None:
    """``fulcrum tokn`` got no "Did you mean" (the commands load lazily, so click saw none); it does,
    as subcommands did."""
    for typed, meant in (("tokn", "token"), ("regsitry", "registry"), ("serv", "serve")):
        ran = CliRunner().invoke(main, [typed])
        assert ran.exit_code == 2
        assert f"No such command '{typed}'. Did you mean '{meant}'?" in ran.output
    assert "Did you mean" not in CliRunner().invoke(main, ["zzz"]).output


@pytest.mark.usefixtures("any_port")
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_log_level_reaches_the_server(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FULCRUM_LOG_LEVEL=warning used to leave the server's INFO lines on unless log_json was set too."""
    levels: list[Any] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: levels.append(kwargs.get("log_level")))
    monkeypatch.setattr("fulcrum_core.demo.prepare_demo", lambda settings: "seeded")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [command], env={"FULCRUM_LOG_LEVEL": "warn"})
    assert result.exit_code == 0, result.output
    assert levels == ["warn"]


def test_run_server_takes_any_level_name_the_setting_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn knows neither ``warn`` nor ``fatal``; the server is given the level's number."""
    seen: list[Any] = []

    def run(server: Any, sockets: Any = None) -> None:
        seen.append(server.config.log_level)
        server.started = True  # as a server that came up does

    monkeypatch.setattr(serve.uvicorn.Server, "run", run)
    for name in ("warn", "FATAL", "info"):
        serve.run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=1, log_level=name)
    assert seen == [logging.WARNING, logging.CRITICAL, logging.INFO]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not-a-url", "not a database URL"),
        ("mysql://db.example/fulcrum", "the host runs on SQLite or PostgreSQL"),
        # A driver the host does not ship was a traceback from the first connection (ModuleNotFoundError).
        (
            "postgresql+psycopg2://u:pw@db.example/fulcrum",
            "the driver 'psycopg2' is not installed; the host connects to PostgreSQL with psycopg "
            "(postgresql://… or postgresql+psycopg://…)",
        ),
        ("postgresql+nosuchdriver://db.example/fulcrum", "the driver 'nosuchdriver' is not installed"),
    ],
)
def test_a_database_url_the_host_cannot_use_is_named(url: str, problem: str) -> None:
    """A URL that does not parse, names another database, or a driver not installed, is the variable's
    problem, said at once."""
    line = _fails(["db", "upgrade"], env={"FULCRUM_DATABASE_URL": url})
    expected = f"Error: cannot load settings: FULCRUM_DATABASE_URL (database_url): {problem}"
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "not a Redis URL: Redis URL must specify one of the following schemes"),
        ("redis://:pw@127.0.0.1:notaport/7", "not a Redis URL: Port could not be cast to integer value"),
    ],
)
def test_a_redis_url_the_host_cannot_use_is_named(url: str, problem: str) -> None:
    """A Redis URL that does not parse is the variable's problem, said when the settings load: it was a
    ValueError traceback once the server had started loading plugins."""
    line = _fails(["token", "issue", "--customer", "c-1"], env={"FULCRUM_REDIS_URL": url})
    expected = f"Error: cannot load settings: FULCRUM_REDIS_URL (redis_url): {problem}"
    assert line.startswith(expected), line
    assert "pw" not in line


def test_a_database_url_in_the_config_file_is_named_with_the_file(tmp_path: Path) -> None:
    config = tmp_path / "fulcrum.toml"
    config.write_text('database_url = "oracle://db/x"\n', encoding="utf-8")
    line = _fails(["--config", str(config), "serve"])
    assert line.startswith(f"Error: cannot load settings: {config} (database_url): "), line


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("port", ["0", "70000"])
def test_a_port_out_of_range_is_a_usage_error(
    command: str, port: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--port 0 is not quietly replaced by the settings' port, and 70000 is no traceback from bind()."""
    served: list[tuple[Any, ...]] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: served.append(args[:2]))
    monkeypatch.setattr("fulcrum_core.demo.prepare_demo", lambda settings: "seeded")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [command, "--port", port])
    assert not served
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port'" in result.output


def test_a_log_level_logging_does_not_know_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """FULCRUM_LOG_LEVEL is checked with the other settings, not by the logging module in a worker
    starting up; any case of a level name is accepted."""
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: None)
    line = _fails(["serve"], env={"FULCRUM_LOG_LEVEL": "LOUD"})
    assert line.startswith("Error: cannot load settings: FULCRUM_LOG_LEVEL (log_level): "), line
    for level in ("debug", "INFO", "Warning", "error", "CRITICAL"):
        assert load_settings(environ={"FULCRUM_LOG_LEVEL": level}).log_level == level


@pytest.mark.parametrize(
    ("args", "command"), [(["demo"], "demo"), (["registry", "list"], "registry list")]
)
def test_config_after_the_command_says_where_it_goes(args: list[str], command: str) -> None:
    """``fulcrum demo --config x.toml`` was only 'No such option': it now says --config is the root's."""
    result = CliRunner().invoke(main, [*args, "--config", "x.toml"], prog_name="fulcrum")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: No such option: --config. --config is an option of fulcrum itself: put it before the "
        f"command (fulcrum --config FILE {command} ...)"
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("host", ["", " ", "127.0.0.1\n", "my host"])
def test_a_host_that_names_no_interface_is_refused_before_anything_binds(command: str, host: str) -> None:
    """``--host ""`` (an unset variable in a script) fell back to the default without a word, and a
    settings file's ``host = ""`` bound every interface. Both are refused, naming the option or the key
    (an empty ``FULCRUM_HOST`` is unset, as every empty variable is)."""
    result = CliRunner().invoke(main, [command, "--host", host])
    assert result.exit_code == 2
    assert f"Invalid value for '--host': {host!r} is no interface name or address" in result.output
    must_be = "must be a host name or address with no spaces or control characters, such as 127.0.0.1"
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={"FULCRUM_HOST": host or " "})
    assert str(refused.value).startswith(f"FULCRUM_HOST (host): {must_be}")
    assert str(refused.value).endswith(f"; it is {host or ' '!r}")
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={}, host=host)
    assert f"(host): {must_be}" in str(refused.value)
    assert "regex" not in str(refused.value)


def test_serve_on_a_busy_port_says_so_before_building_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` on a port something listens on: uvicorn's bind error came only after the whole startup
    (plugins loaded, database opened), exit 3; it now names the port as in use first, exit 1, like the
    demo. With ``--reuse-port`` another process on the port is the point, so it is not refused."""
    served: list[object] = []
    monkeypatch.setattr(serve, "_run", lambda *args, **kwargs: served.append(args[:2]))
    monkeypatch.chdir(tmp_path)
    with _listening() as port:
        ran = CliRunner().invoke(main, ["serve", "--port", str(port)], env={"FULCRUM_HOST": "127.0.0.1"})
        shared = CliRunner().invoke(
            main, ["serve", "--port", str(port), "--reuse-port"], env={"FULCRUM_HOST": "127.0.0.1"}
        )
    assert ran.exit_code == 1, ran.output
    assert ran.output.startswith(f"Error: port {port} on 127.0.0.1 is in use")
    assert shared.exit_code == 0, shared.output
    assert served == [("127.0.0.1", port)]


@pytest.mark.parametrize(
    ("variable", "value", "must_be"),
    [
        ("FULCRUM_LOG_LEVEL", "loud", "a log level: critical, fatal, error, warn, warning, info, debug"),
        ("FULCRUM_LOG_LEVEL", "info\n", "a log level"),
        ("FULCRUM_PROBLEM_BASE_URL", "ftp://docs.example/", "an absolute http(s) URL with no spaces, query"),
        ("FULCRUM_PROBLEM_BASE_URL", "https://docs.example/a b", "an absolute http(s) URL"),
    ],
)
def test_a_setting_not_of_its_shape_says_what_it_must_be_and_what_it_was(
    variable: str, value: str, must_be: str
) -> None:
    """The platform team reads what the key takes and the value given, escaped; msgspec's regular
    expression told them neither."""
    key = variable.removeprefix("FULCRUM_").lower()
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={variable: value})
    message = str(refused.value)
    assert message.startswith(f"{variable} ({key}): must be {must_be}")
    assert message.endswith(f"; it is {value!r}")
    assert "regex" not in message


def test_a_jwks_source_off_the_loopback_interface_is_refused_in_words(tmp_path: Path) -> None:
    """A JWK Set URL on another host, from the settings file: the file, the key and what it takes."""
    config = tmp_path / "fulcrum.toml"
    config.write_text('[oauth_idp]\njwks = "https://idp.example/jwks.json"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(config_file=config, environ={})
    assert str(refused.value) == (
        f"{config} (oauth_idp.jwks): must be a JWK Set file's path, or an http(s) URL on the loopback "
        "interface (127.0.0.0/8, localhost or [::1]), such as http://127.0.0.1:8080/jwks.json; "
        "it is 'https://idp.example/jwks.json'"
    )
