"""``fulcrum keys``: rotating and retiring the signing keys the way the server's own verifier sees them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fulcrum_core.auth.keys import KEY_FILE_NAME
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.cli import main
from fulcrum_core.errors import Unauthorized
from fulcrum_core.settings import Settings, load_settings


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file whose state directory holds a server's keys."""
    path = tmp_path / "fulcrum.toml"
    path.write_text(f'state_dir = "{(tmp_path / "state").as_posix()}"\nissuer = "https://fulcrum.test"\n')
    TokenService.from_settings(load_settings(config_file=path, environ={}))
    return path


@pytest.fixture
def settings(config: Path) -> Settings:
    return load_settings(config_file=config, environ={})


def _keys(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "keys", *args], env={"FULCRUM_CONFIG": None})
    return result.exit_code, result.stdout, result.stderr


def _listed(config: Path) -> list[dict[str, object]]:
    code, out, err = _keys(config, "list", "--json")
    assert code == 0, err
    listed: list[dict[str, object]] = json.loads(out)
    return listed


def _backdate(settings: Settings, kid: str, seconds: int) -> None:
    """Pretend key ``kid`` was made ``seconds`` earlier than the file says."""
    path = Path(settings.state_dir) / KEY_FILE_NAME
    body = json.loads(path.read_text())
    body["created_at"][kid] -= seconds
    path.write_text(json.dumps(body))


def test_rotate_signs_new_tokens_with_the_new_key_and_the_old_one_still_verifies(
    config: Path, settings: Settings
) -> None:
    """``rotate`` prints only the new kid; new tokens carry it, and a token signed before still verifies
    (by a verifier that had loaded the file before the rotation, as a running worker has)."""
    worker = TokenService.from_settings(settings)
    before = worker.issue("c-1", ["profile:basic"], kind="customer")
    [old] = _listed(config)
    assert old["current"] is True
    assert old["retire_after"] is None
    code, out, err = _keys(config, "rotate")
    assert code == 0, err
    kid = out.strip()
    assert kid != old["kid"]
    assert f"fulcrum keys retire {old['kid']}" in err
    after = TokenService.from_settings(settings).issue("c-1", ["profile:basic"], kind="customer")
    assert json.loads(_header(after))["kid"] == kid
    assert worker.verify_token(before).claims.sub == "c-1"
    assert worker.verify_token(after).claims.sub == "c-1"  # the new kid, read from the file on sight
    listed = {k["kid"]: k for k in _listed(config)}
    assert listed[kid]["current"] is True
    # the longest token or login, then the verifier's 5 s leeway and the 1 s a worker may sign on
    lifetime = max(settings.access_token_ttl_seconds, settings.oauth_idp.login_seconds) + 5 + 1
    assert listed[old["kid"]]["retire_after"] == listed[kid]["created_at"] + lifetime  # type: ignore[operator]


def test_rotate_names_the_retirement_time_keys_list_shows(
    config: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation is recorded a moment before the command reads the clock to print its message (here
    two seconds, as a slow disk or a second boundary makes it): rotate named a time after the one
    ``keys list`` shows and ``keys retire`` checks (01:33:17 against 01:33:16), now the same one."""
    [old] = _listed(config)
    recorded = time.time() - 2
    monkeypatch.setattr("fulcrum_core.auth.keys.time.time", lambda: recorded)
    code, _, err = _keys(config, "rotate")
    monkeypatch.undo()
    assert code == 0, err
    listed = {k["kid"]: k for k in _listed(config)}
    retire_after = listed[str(old["kid"])]["retire_after"]
    assert isinstance(retire_after, int)
    shown = datetime.fromtimestamp(retire_after, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"`fulcrum keys retire {old['kid']}` after {shown} (" in err


def _header(jwt: str) -> str:
    import base64

    head = jwt.split(".")[0]
    return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()


def test_retire_waits_until_what_the_key_signed_has_expired(config: Path, settings: Settings) -> None:
    """Right after a rotation the old key is refused for retirement (exit 1, saying until when and
    ``--now``), and is kept; once its tokens' lifetime has passed since the rotation it is retired, and
    a token it signed is refused."""
    worker = TokenService.from_settings(settings)
    signed = worker.issue("c-1", ["profile:basic"], kind="customer")
    [old] = _listed(config)
    assert _keys(config, "rotate")[0] == 0
    code, _, err = _keys(config, "retire", str(old["kid"]))
    assert code == 1
    assert "may still be valid until" in err
    assert "--now" in err
    assert old["kid"] in {k["kid"] for k in _listed(config)}
    new = next(k for k in _listed(config) if k["current"])
    _backdate(settings, str(new["kid"]), 3600)  # the rotation an hour ago
    _backdate(settings, str(old["kid"]), 3600)
    code, _, err = _keys(config, "retire", str(old["kid"]))
    assert code == 0, err
    assert [k["kid"] for k in _listed(config)] == [new["kid"]]
    time.sleep(1.1)  # a running worker rereads the file within a second
    with pytest.raises(Unauthorized):
        worker.verify_token(signed)


def test_retire_now_signs_the_holders_out_at_once(config: Path, settings: Settings) -> None:
    """``--now`` retires a key whose tokens may still be valid."""
    [old] = _listed(config)
    assert _keys(config, "rotate")[0] == 0
    code, _, err = _keys(config, "retire", str(old["kid"]), "--now")
    assert code == 0, err
    assert old["kid"] not in {k["kid"] for k in _listed(config)}


def test_retire_refuses_the_current_key_and_an_unknown_one(config: Path) -> None:
    """The current key is a usage error saying to rotate first; an unknown kid lists the keys."""
    [only] = _listed(config)
    code, _, err = _keys(config, "retire", str(only["kid"]), "--now")
    assert code == 2
    assert "is the current signing key" in err
    assert "fulcrum keys rotate" in err
    code, _, err = _keys(config, "retire", "no-such-kid")
    assert code == 2
    assert "no key 'no-such-kid'" in err
    assert str(only["kid"]) in err
    assert [k["kid"] for k in _listed(config)] == [only["kid"]]


def test_without_a_key_file_nothing_is_made(tmp_path: Path) -> None:
    """Run where no server made keys, every command says where it looked and makes no key file (no
    server would know its keys)."""
    path = tmp_path / "elsewhere.toml"
    state = tmp_path / "empty-state"
    path.write_text(f'state_dir = "{state.as_posix()}"\n')
    for args in (("list",), ("rotate",), ("retire", "x", "--now")):
        code, _, err = _keys(path, *args)
        assert code == 1, args
        assert "there are no signing keys at" in err
    assert not (state / KEY_FILE_NAME).exists()


def _made(settings: Settings, ages: dict[str, int | None]) -> None:
    """Record each key as made ``ages[kid]`` seconds ago (``None``: not recorded)."""
    path = Path(settings.state_dir) / KEY_FILE_NAME
    body = json.loads(path.read_text())
    now = int(time.time())
    body["created_at"] = {kid: now - age for kid, age in ages.items() if age is not None}
    path.write_text(json.dumps(body))


def _made_in_order(settings: Settings) -> list[str]:
    """The kids in the order the keys were made (each rotation appends its key to the file)."""
    body = json.loads((Path(settings.state_dir) / KEY_FILE_NAME).read_text())
    return [str(key["kid"]) for key in body["keys"]]


@pytest.mark.parametrize(
    ("first", "second"),
    [(7200, 7200), (3600, 7200)],
    ids=["rotated-twice-in-one-second", "second-key-made-by-a-clock-behind"],
)
def test_a_key_is_replaced_by_the_key_made_after_it_not_by_an_older_one(
    config: Path, settings: Settings, first: int, second: int
) -> None:
    """After two rotations, the middle key signed until the current one was made a minute ago: retiring
    it waits, although the first key's recorded time is as late as (or later than) its own."""
    assert _keys(config, "rotate")[0] == 0
    assert _keys(config, "rotate")[0] == 0
    a, b, c = _made_in_order(settings)
    _made(settings, {a: first, b: second, c: 60})
    listed = {str(k["kid"]): k for k in _listed(config)}
    assert listed[b]["replaced_at"] == listed[c]["created_at"]
    code, _, err = _keys(config, "retire", b)
    assert code == 1, err
    assert "may still be valid until" in err
    assert b in {k["kid"] for k in _listed(config)}


def test_a_key_whose_successor_has_no_recorded_time_is_replaced_by_the_next_recorded_one(
    config: Path, settings: Settings
) -> None:
    """A key stopped signing no later than the next key with a recorded time was made (its own time is
    not needed); with none after it, when it stopped is not recorded and retiring it takes ``--now``."""
    assert _keys(config, "rotate")[0] == 0
    assert _keys(config, "rotate")[0] == 0
    a, b, c = _made_in_order(settings)
    _made(settings, {a: 7200, b: None, c: 60})
    listed = {str(k["kid"]): k for k in _listed(config)}
    assert listed[a]["replaced_at"] == listed[b]["replaced_at"] == listed[c]["created_at"]
    assert _keys(config, "retire", a)[0] == 1
    assert _keys(config, "retire", b)[0] == 1
    _made(settings, {a: 7200, b: None, c: None})
    assert [k["replaced_at"] for k in _listed(config)] == [None, None, None]
    code, _, err = _keys(config, "retire", a)
    assert code == 1
    assert "(not recorded)" in err
    assert _keys(config, "retire", a, "--now")[0] == 0


def _key_whose_kid_begins(prefix: str) -> Any:
    from joserfc.jwk import ECKey

    while True:
        key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)
        if key.kid.startswith(prefix):
            return key


@pytest.mark.parametrize("prefix", ["-", "-h"])
def test_a_kid_that_begins_with_a_dash_is_retired_by_name(
    config: Path, settings: Settings, prefix: str
) -> None:
    """A kid is a base64url thumbprint, so one in 64 begins with '-' (and one in 4096 with '-h', the
    short help option): ``retire`` takes it as the key to retire, not as an option (it was refused as
    unknown, or printed the help and retired nothing), and ``--now`` still works beside it."""
    dashed = _key_whose_kid_begins(prefix)
    path = Path(settings.state_dir) / KEY_FILE_NAME
    body = json.loads(path.read_text())
    body["keys"].insert(0, dashed.as_dict(private=True))
    body["created_at"][dashed.kid] = int(time.time()) - 7200
    path.write_text(json.dumps(body))
    code, out, err = _keys(config, "retire", str(dashed.kid))
    assert code == 1, (out, err)  # refused for its age: the key after it was made just now
    assert "may still be valid" in err
    code, _, err = _keys(config, "retire", str(dashed.kid), "--now")
    assert code == 0, err
    assert dashed.kid not in {k["kid"] for k in _listed(config)}
