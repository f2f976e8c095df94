"""A partner's own request id in the host's failure logs, and ``fulcrum support`` to follow its report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.dispatch.context import partner_request_id
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.observability.logging import JsonFormatter
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings

pytestmark = pytest.mark.anyio

SECRET = "s3cret-for-tests"


def _boom(ctx: Any) -> Any:
    raise RuntimeError("partner bug")


async def test_a_partners_failure_is_logged_with_the_request_id_it_was_given(
    settings: Settings, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The "left out" warning names the id the partner saw (text and a JSON field); an internal
    plugin's names none (its ctx.request_id is the host's own)."""
    loaded = get_plugin_manager(
        settings,
        extra_plugins=(
            kit.plugin("partner-x", kind="partner", home_slot_offers=_boom),
            kit.plugin("dept-y", home_slot_offers=_boom),
        ),
        load_entry_points=False,
    )
    plugins = list(loaded.loaded.values())
    calls = [(p, msgspec.structs.replace(kit.context(p), request_id=f"rid-of-{p.id}")) for p in plugins]
    dispatcher = Dispatcher(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="fulcrum.dispatch"):
            gathered = await dispatcher.call_many("home_slot_offers", calls)
    finally:
        dispatcher.close()
    assert {d.plugin for d in gathered.degraded} == {"partner-x", "dept-y"}
    records = {r.plugin: r for r in caplog.records if getattr(r, "plugin", None)}  # type: ignore[attr-defined]
    partner = records["partner-x"]
    assert partner.partner_request_id == "rid-of-partner-x"  # type: ignore[attr-defined]
    assert "[partner request id rid-of-partner-x]" in partner.getMessage()
    line = json.loads(JsonFormatter().format(partner))
    assert line["partner_request_id"] == "rid-of-partner-x"
    assert (line["plugin"], line["hook"]) == ("partner-x", "home_slot_offers")
    internal = records["dept-y"]
    assert not hasattr(internal, "partner_request_id")
    assert "partner_request_id" not in json.loads(JsonFormatter().format(internal))


def _cli(tmp_path: Path, *args: str, input: str | None = None) -> Any:
    env = {"FULCRUM_PAIRWISE_SECRET": SECRET, "FULCRUM_STATE_DIR": str(tmp_path), "FULCRUM_CONFIG": None}
    return CliRunner().invoke(main, ["support", *args], env=env, input=input)


def test_partner_request_id_prints_what_the_partner_saw(tmp_path: Path) -> None:
    """The command computes exactly the host's HMAC for that plugin and request."""
    result = _cli(tmp_path, "partner-request-id", "merchant-promo", "abc123")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == partner_request_id(SECRET.encode(), "merchant-promo", "abc123")


@pytest.mark.parametrize("host_id", ["", " abc123", "abc123\n", "a" * 65, "请求"])
def test_an_id_the_host_never_gives_is_refused_naming_the_argument(tmp_path: Path, host_id: str) -> None:
    """The host gives a partner ``""`` for an empty id and never hands out any other id outside 1–64 of
    ``A-Za-z0-9._-``; the command printed an HMAC for each (a pasted space or newline included), an id no
    partner saw, sending support looking for it. Now a usage error naming HOST_REQUEST_ID."""
    result = _cli(tmp_path, "partner-request-id", "merchant-promo", host_id)
    assert result.exit_code == 2, result.output
    assert "HOST_REQUEST_ID" in result.output
    assert "1–64 letters, digits" in result.output


def test_find_request_maps_a_partners_id_back_to_the_host_request(tmp_path: Path) -> None:
    """Given the hosts' JSON log, a partner's id leads to the host request id and its lines."""
    theirs = partner_request_id(SECRET.encode(), "merchant-promo", "req-2")
    log = tmp_path / "host.log"
    log.write_text(
        "\n".join(
            [
                json.dumps({"message": "one", "request_id": "req-1"}),
                "plain text line",
                json.dumps({"message": "two", "request_id": "req-2"}),
                json.dumps({"message": "tx", "request_id": "req-3", "transaction_id": "tx-9"}),
            ]
        )
        + "\n"
    )
    found = _cli(tmp_path, "find-request", "merchant-promo", theirs, str(log))
    assert found.exit_code == 0, found.output
    assert '"message": "two"' in found.output
    assert '"one"' not in found.output
    assert "host request: req-2" in found.output
    via_tx = _cli(
        tmp_path,
        "find-request",
        "merchant-promo",
        partner_request_id(SECRET.encode(), "merchant-promo", "tx-9"),
        input=log.read_text(),
    )
    assert via_tx.exit_code == 0, via_tx.output
    assert "host request: tx-9" in via_tx.output


def test_find_request_says_when_nothing_matches_and_refuses_without_a_secret(tmp_path: Path) -> None:
    """No match is exit 1 naming the id; without a secret nothing is computed (a new one would be wrong)."""
    log = tmp_path / "host.log"
    log.write_text(json.dumps({"request_id": "req-1"}) + "\n")
    missing = _cli(tmp_path, "find-request", "merchant-promo", "f" * 32, str(log))
    assert missing.exit_code == 1
    assert "no request in these logs" in missing.output
    result = CliRunner().invoke(
        main,
        ["support", "partner-request-id", "merchant-promo", "r"],
        env={
            "FULCRUM_PAIRWISE_SECRET": None,
            "FULCRUM_STATE_DIR": str(tmp_path / "empty"),
            "FULCRUM_CONFIG": None,
        },
    )
    assert result.exit_code == 1
    assert "no pairwise secret" in result.output
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("command", [["partner-request-id", "merchant-promo"], ["find-request", "f" * 32]])
def test_an_unknown_plugin_without_a_registry_is_mapped_with_a_warning(
    tmp_path: Path, command: list[str]
) -> None:
    """A typo in the plugin id printed an HMAC no partner ever saw. With no registry here to ask (the
    command needs only the pairwise secret), an id that is not installed is still mapped, with a
    warning that says so and names the installed id it may have meant."""
    result = _cli(tmp_path, command[0], "merchant-prmo", command[1])
    assert "warning: 'merchant-prmo' is not installed here and there is no registry to check it against " \
        "(did you mean merchant-promo?); mapping it as given" in result.output
    assert not (tmp_path / "fulcrum.db").exists()  # looking for the registry created no database


def test_an_unreadable_registry_is_said_in_the_warning_without_advice_that_does_not_apply(
    tmp_path: Path,
) -> None:
    """A registry database that exists but cannot be read: the id is mapped with one
    plain warning; it carried the registry check's own advice ("or name a plugin installed here")."""
    (tmp_path / "fulcrum.db").write_bytes(b"this is not a database" * 100)  # a file SQLite refuses
    result = _cli(tmp_path, "partner-request-id", "not-installed", "abc")
    assert result.exit_code == 0, result.output
    warning = result.output.splitlines()[0]
    assert warning == (
        "warning: 'not-installed' is not installed here and the registry cannot be read; mapping it as given"
    )


def test_an_internal_plugin_is_given_the_host_id_it_saw_with_a_note(tmp_path: Path) -> None:
    """``pension`` (a department's plugin) sees the host's request id itself: the command printed an
    HMAC no plugin ever saw; it prints the host id, with a note naming the plugin's kind."""
    result = CliRunner().invoke(
        main, ["support", "partner-request-id", "pension", "abc123"],
        env={"FULCRUM_PAIRWISE_SECRET": SECRET, "FULCRUM_STATE_DIR": str(tmp_path), "FULCRUM_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "abc123\n"
    assert result.stderr == (
        "note: 'pension' is a department plugin: internal plugins see the host's request id itself, "
        "unmapped (only partner plugins see an HMAC of it)\n"
    )


def test_find_request_for_an_internal_plugin_finds_the_id_it_quoted(tmp_path: Path) -> None:
    """An internal plugin quotes the host's id: its lines are found (no pairwise secret needed)."""
    log = tmp_path / "host.log"
    log.write_text(json.dumps({"message": "one", "request_id": "req-1"}) + "\n"
                   + json.dumps({"message": "two", "request_id": "req-2"}) + "\n")
    env = {"FULCRUM_PAIRWISE_SECRET": None, "FULCRUM_STATE_DIR": str(tmp_path), "FULCRUM_CONFIG": None}
    found = CliRunner().invoke(main, ["support", "find-request", "pension", "req-2", str(log)], env=env)
    assert found.exit_code == 0, found.output
    assert found.stdout == json.dumps({"message": "two", "request_id": "req-2"}) + "\n"
    assert "host request: req-2" in found.stderr
    assert "'pension' is a department plugin" in found.stderr
