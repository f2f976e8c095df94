"""Per-hook slow-call thresholds: from settings (default, TOML, refused values) to each hook's breaker."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.dispatch.breaker import BreakerState
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.settings import Deadlines, Settings, SettingsError, SlowCalls, load_settings


def _config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "fulcrum.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_the_default_is_four_fifths_of_each_deadline() -> None:
    """Unset, a hook's threshold is 80 % of its deadline, and follows a changed deadline."""
    settings = Settings()
    assert settings.slow_call_ms("home_slot_offers") == 120.0
    assert settings.slow_call_ms("search") == 240.0
    assert settings.slow_call_ms("execute_transaction") == 4000.0
    shorter = msgspec.structs.replace(settings, deadlines=Deadlines(home_slot_offers=100))
    assert shorter.slow_call_ms("home_slot_offers") == 80.0


def test_a_threshold_from_the_config_file_reaches_the_hooks_breaker(tmp_path: Path) -> None:
    """``[slow_calls]`` in TOML sets one hook's threshold (up to the deadline itself); the others keep
    the default."""
    config = _config(tmp_path, "[slow_calls]\nhome_slot_offers = 100\nsearch = 300\n")
    settings = load_settings(config_file=config, environ={})
    assert settings.slow_calls == SlowCalls(home_slot_offers=100, search=300)
    dispatcher = Dispatcher(settings)
    try:
        home = dispatcher.resilience.get("p", "home_slot_offers").breaker.config
        search = dispatcher.resilience.get("p", "search").breaker.config
        feeds = dispatcher.resilience.get("p", "feed_items").breaker.config
    finally:
        dispatcher.close()
    assert (home.slow_call_duration_s, search.slow_call_duration_s) == (0.100, 0.300)
    assert feeds.slow_call_duration_s == pytest.approx(0.240)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[slow_calls]\nhome_slot_offers = 200\n",
            "(slow_calls.home_slot_offers): 200 ms is over the hook's deadline "
            "(deadlines.home_slot_offers = 150 ms)",
        ),
        (  # a deadline lowered under a threshold that was fine for the old one
            "[deadlines]\nsearch = 100\n[slow_calls]\nsearch = 240\n",
            "(slow_calls.search): 240 ms is over the hook's deadline (deadlines.search = 100 ms)",
        ),
        ("[slow_calls]\nsearch = 0\n", "(slow_calls.search): must be at least 1"),
        ("[slow_calls]\nsearch = -5\n", "(slow_calls.search): must be at least 1"),
        ("[slow_calls]\nsearch = 0.5\n", "(slow_calls.search): Expected `int | null`, got `float`"),
        ("[slow_calls]\nhome = 100\n", "(slow_calls): Object contains unknown field `home`"),
        (  # every hook's breaker takes its own threshold: this key was ignored without a word
            "[breaker]\nslow_call_duration_s = 0.1\n",
            "(breaker.slow_call_duration_s): set per hook in [slow_calls] (milliseconds), not here",
        ),
    ],
)
def test_a_bad_threshold_names_the_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    """Zero, negative, fractional, over the deadline, misspelt or in the old place: a settings error
    naming where and what."""
    config = _config(tmp_path, toml)
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config, environ={})
    assert str(caught.value).startswith(f"{config} {message}"), str(caught.value)


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    """A command meets a threshold over the deadline with one ``Error:`` line, no traceback."""
    config = _config(tmp_path, "[slow_calls]\nfeed_items = 301\n")
    result = CliRunner().invoke(main, ["--config", str(config), "db", "current"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().startswith(
        f"Error: cannot load settings: {config} (slow_calls.feed_items): 301 ms is over the hook's deadline"
    )


def test_settings_built_in_code_are_checked_too() -> None:
    """``Settings(...)`` (as the tests and embedders build it) refuses what the file would."""
    with pytest.raises(ValueError, match=r"slow_calls\.page: 301 ms is over the hook's deadline"):
        Settings(slow_calls=SlowCalls(page=301))


@pytest.mark.parametrize(("duration", "state"), [(0.140, BreakerState.OPEN), (0.050, BreakerState.CLOSED)])
def test_the_dispatchers_home_breaker_judges_by_the_default_threshold(
    duration: float, state: BreakerState
) -> None:
    """With every setting at its default, a plugin answering home in 140 ms of 150 is skipped after the
    minimum number of calls; one answering in 50 ms never is (virtual clock, no sleeps)."""
    settings = Settings()
    dispatcher = Dispatcher(settings, clock=VirtualClock())
    try:
        breaker = dispatcher.resilience.get("p", "home_slot_offers").breaker
        for _ in range(2 * settings.breaker.sliding_window_size):
            if not breaker.try_acquire():
                break
            breaker.on_success(duration)
        assert breaker.state is state
        assert dispatcher.breaker_open("p", "home_slot_offers") is (state is BreakerState.OPEN)
    finally:
        dispatcher.close()
