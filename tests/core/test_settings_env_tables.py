"""``FULCRUM_<TABLE>__<KEY>`` variables: one key each of the breaker, deadline, slow-call and rate-limit
tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from fulcrum_core.settings import SettingsError, load_settings, misspelt_variables


def test_each_table_takes_its_keys_from_variables() -> None:
    """One variable per key, the value converted as the TOML file's would be."""
    settings = load_settings(environ={
        "FULCRUM_BREAKER__SLIDING_WINDOW_TYPE": "time_based",
        "FULCRUM_BREAKER__SLIDING_WINDOW_SIZE": "60",
        "FULCRUM_DEADLINES__HOME_SLOT_OFFERS": "200",
        "FULCRUM_SLOW_CALLS__HOME_SLOT_OFFERS": "180",
        "FULCRUM_RATE_LIMIT__ENABLED": "false",
    })
    assert (settings.breaker.sliding_window_type, settings.breaker.sliding_window_size) == ("time_based", 60)
    assert settings.deadlines.home_slot_offers == 200
    assert settings.slow_calls.home_slot_offers == 180
    assert settings.rate_limit.enabled is False


def test_a_variable_overrides_one_key_of_the_files_table(tmp_path: Path) -> None:
    """The file's other keys in that table stay as the file set them; an empty variable is unset."""
    config = tmp_path / "fulcrum.toml"
    config.write_text("[breaker]\nsliding_window_size = 50\nminimum_number_of_calls = 7\n", encoding="utf-8")
    settings = load_settings(
        config_file=config,
        environ={"FULCRUM_BREAKER__SLIDING_WINDOW_SIZE": "30", "FULCRUM_BREAKER__FAILURE_RATE_THRESHOLD": ""},
    )
    assert (settings.breaker.sliding_window_size, settings.breaker.minimum_number_of_calls) == (30, 7)
    assert settings.breaker.failure_rate_threshold == 50.0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"FULCRUM_DEADLINES__HOME_SLOT_OFFERS": "soon"},
            "FULCRUM_DEADLINES__HOME_SLOT_OFFERS (deadlines.home_slot_offers): Expected `int`, got `str`",
        ),
        (
            {"FULCRUM_BREAKER__SLIDING_WINDOW_TYPE": "time"},
            "FULCRUM_BREAKER__SLIDING_WINDOW_TYPE (breaker.sliding_window_type): Invalid enum value 'time'",
        ),
        (
            {"FULCRUM_SLOW_CALLS__HOME_SLOT_OFFERS": "400"},
            "FULCRUM_SLOW_CALLS__HOME_SLOT_OFFERS (slow_calls.home_slot_offers): 400 ms is over the hook's "
            "deadline",
        ),
    ],
    ids=["wrong-type", "bad-choice", "over-the-deadline"],
)
def test_a_bad_value_names_its_variable_and_key(environ: dict[str, str], expected: str) -> None:
    """The error says which variable and which setting, as for the scalar variables and the file."""
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert str(caught.value).startswith(expected)


def test_an_unknown_key_of_a_known_table_is_an_error() -> None:
    """``FULCRUM_BREAKER__WINDOW`` is no breaker setting: refused, as an unknown key in the file is."""
    with pytest.raises(SettingsError, match=r"FULCRUM_BREAKER__\* \(breaker\).*window"):
        load_settings(environ={"FULCRUM_BREAKER__WINDOW": "5"})


def test_table_variables_are_not_taken_for_misspellings() -> None:
    """A table's variables are settings; a misspelt one gets its own suggestion from the loader's error,
    and the scalar variables' check still warns about a near miss."""
    tables = {"FULCRUM_BREAKER__SLIDING_WINDOW_SIZE": "30", "FULCRUM_DEADLINES__SEARCH": "9"}
    assert misspelt_variables(tables) == []
    assert misspelt_variables({"FULCRUM_PROT": "1"}) == [
        "FULCRUM_PROT is not a setting and is ignored; did you mean FULCRUM_PORT?"
    ]


def test_a_file_value_that_is_no_table_is_named_even_with_variables_for_it(tmp_path: Path) -> None:
    """``breaker = 5`` in the file and a breaker variable: the error names the file's value, not a
    table silently made from the variable alone."""
    config = tmp_path / "fulcrum.toml"
    config.write_text("breaker = 5\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config, environ={"FULCRUM_BREAKER__SLIDING_WINDOW_SIZE": "3"})
    assert str(caught.value) == f"{config} (breaker): Expected `object`, got `int`"


def test_open_on_loop_hold_comes_from_the_file_or_a_variable_and_reaches_the_breakers(tmp_path: Path) -> None:
    from fulcrum_core.dispatch.dispatcher import Dispatcher

    config = tmp_path / "host.toml"
    config.write_text("[breaker]\nopen_on_loop_hold = 0\n")
    assert load_settings(config_file=config, environ={}).breaker.open_on_loop_hold == 0
    settings = load_settings(config_file=config, environ={"FULCRUM_BREAKER__OPEN_ON_LOOP_HOLD": "3"})
    assert settings.breaker.open_on_loop_hold == 3
    dispatcher = Dispatcher(settings)
    try:
        assert dispatcher.resilience.get("any", "home_slot_offers").breaker.config.open_on_loop_hold == 3
    finally:
        dispatcher.close()
    with pytest.raises(SettingsError, match=r"open_on_loop_hold. must be 0 \(off\) or >= 1, got 0.5"):
        load_settings(environ={"FULCRUM_BREAKER__OPEN_ON_LOOP_HOLD": "0.5"})


def test_every_setting_of_one_value_is_read_from_its_variable() -> None:
    """``FULCRUM_HOME_BUDGET_MS`` and the other one-value settings that had no variable are read (they
    were ignored without a word), with the settings' own checks."""
    given = {
        "FULCRUM_HOME_BUDGET_MS": ("home_budget_ms", "300", 300),
        "FULCRUM_DATA_BUDGET_MS": ("data_budget_ms", "50", 50),
        "FULCRUM_BULKHEAD_SIZE": ("bulkhead_size", "8", 8),
        "FULCRUM_STORAGE_CACHE_MS": ("storage_cache_ms", "0", 0),
        "FULCRUM_CONSENT_CACHE_MS": ("consent_cache_ms", "250", 250),
        "FULCRUM_DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", "5000", 5000),
        "FULCRUM_MAX_TRANSACTION_FEN": ("max_transaction_fen", "100000", 100_000),
        "FULCRUM_ACCESS_TOKEN_TTL_SECONDS": ("access_token_ttl_seconds", "120", 120),
        "FULCRUM_BREAKER_SHARE_SECONDS": ("breaker_share_seconds", "0.5", 0.5),
        "FULCRUM_METRICS_SHARE_SECONDS": ("metrics_share_seconds", "2", 2.0),
    }
    settings = load_settings(environ={var: text for var, (_, text, _) in given.items()})
    assert {field: getattr(settings, field) for field, _, _ in given.values()} == {
        field: value for field, _, value in given.values()
    }
    with pytest.raises(SettingsError, match=r"^FULCRUM_HOME_BUDGET_MS \(home_budget_ms\): must be at least "):
        load_settings(environ={"FULCRUM_HOME_BUDGET_MS": "0"})


def test_every_top_level_setting_has_a_variable_or_says_where_it_is_set() -> None:
    """Each field of ``Settings`` is a one-value variable, a table of variables, or refused as a
    variable naming the file: a new setting cannot be ignored from the environment unsaid."""
    import msgspec
    from fulcrum_core import settings as module

    fields = {f.name for f in msgspec.structs.fields(module.Settings)}
    covered = {
        *module._ENV_FIELDS.values(), *module._ENV_TABLES, *module._FILE_ONLY_TABLES, *module._FILE_ONLY_LISTS
    }
    assert fields - covered == set()
    assert {"bulkhead_size", "home_budget_ms", "storage_cache_ms"} <= set(module._ENV_FIELDS.values())
