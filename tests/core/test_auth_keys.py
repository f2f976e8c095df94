"""The signing key store: one JWKS file per state_dir, created once, shared, rotatable."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pytest
from fulcrum_core.auth.keys import KEY_FILE_NAME, KeyStore, SigningKeyError
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.errors import Unauthorized

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _service(store: KeyStore) -> TokenService:
    return TokenService(store, issuer="https://fulcrum.test", audience="fulcrum-app", max_ttl_seconds=300)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """Where the store of ``tmp_path`` keeps its keys."""
    return tmp_path / KEY_FILE_NAME


@posix_only
def test_key_file_created_on_first_use_with_mode_0600(tmp_path: Path, key_file: Path) -> None:
    """Opening a store on an empty state_dir writes a one-key JWKS file readable only by its owner."""
    store = KeyStore.open(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    data = json.loads(key_file.read_text())
    assert [k["kid"] for k in data["keys"]] == [store.current_kid]
    assert data["keys"][0]["alg"] == "ES256"
    assert data["keys"][0]["use"] == "sig"
    assert data["current_kid"] == store.current_kid
    assert store.created_at(store.current_kid) is not None
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE_NAME]  # no temporary files left behind


def test_state_dir_is_created_when_missing(tmp_path: Path) -> None:
    """A state_dir that does not exist yet is created along with the key file."""
    store = KeyStore.open(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / KEY_FILE_NAME).is_file()
    assert store.current_kid


def test_key_file_reused_not_regenerated(tmp_path: Path, key_file: Path) -> None:
    """A second store on the same state_dir loads the existing key instead of making a new one."""
    first = KeyStore.open(tmp_path)
    before = key_file.read_bytes()
    second = KeyStore.open(tmp_path)
    assert second.current_kid == first.current_kid
    assert key_file.read_bytes() == before


def test_two_services_on_one_state_dir_verify_each_others_tokens(tmp_path: Path) -> None:
    """Two workers (two services, one state_dir) accept each other's tokens."""
    a, b = _service(KeyStore.open(tmp_path)), _service(KeyStore.open(tmp_path))
    assert b.verify(a.issue("c-1", ["home:read"])).sub == "c-1"
    assert a.verify(b.issue("c-2", ["home:read"])).sub == "c-2"


def test_losing_the_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    """A worker whose create-if-absent finds the file already there keeps the existing key."""
    winner = KeyStore.open(tmp_path)
    loser = KeyStore(tmp_path / KEY_FILE_NAME)
    loser._create_if_absent()  # the race: the file appeared between our check and our link
    assert loser.current_kid == winner.current_kid
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE_NAME]


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    """Many stores opening an empty state_dir at once all end up with the same single key."""
    barrier = threading.Barrier(8)
    kids: list[str] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            kids.append(KeyStore.open(tmp_path).current_kid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(kids)) == 1
    assert len(json.loads((tmp_path / KEY_FILE_NAME).read_text())["keys"]) == 1


def test_concurrent_rotations_lose_no_key(tmp_path: Path) -> None:
    """Rotations racing from several stores (as from several workers) all land: no key is lost."""
    KeyStore.open(tmp_path)
    stores = [KeyStore.open(tmp_path) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    new_kids: list[str] = []

    def rotate(store: KeyStore) -> None:
        barrier.wait()
        new_kids.append(store.rotate())

    threads = [threading.Thread(target=rotate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = KeyStore.open(tmp_path)
    assert len(final.kids) == 7
    assert set(new_kids) <= set(final.kids)
    assert final.current_kid in new_kids


def test_public_jwks_has_no_private_parts(tmp_path: Path) -> None:
    """The publishable JWKS carries public keys only, current key first."""
    store = KeyStore.open(tmp_path)
    old = store.current_kid
    new = store.rotate()
    jwks = store.public_jwks()
    assert [k["kid"] for k in jwks["keys"]] == [new, old]
    assert all("d" not in k for k in jwks["keys"])


def test_rotation_keeps_old_keys_for_verification(tmp_path: Path) -> None:
    """After rotation new tokens use the new kid and tokens signed by the old key still verify."""
    svc = _service(KeyStore.open(tmp_path))
    old_token = svc.issue("c-1", ["home:read"])
    old_kid = svc.keys.current_kid
    new_kid = svc.keys.rotate()
    assert new_kid != old_kid
    assert set(svc.keys.kids) == {old_kid, new_kid}
    new_token = svc.issue("c-1", ["home:read"])
    assert svc.verify(old_token).sub == "c-1"
    assert svc.verify(new_token).sub == "c-1"


def test_other_worker_picks_up_a_rotated_key_from_an_unknown_kid(tmp_path: Path) -> None:
    """A worker that has not reloaded yet rereads the file when a token names a kid it has not seen."""
    a, b = _service(KeyStore.open(tmp_path)), _service(KeyStore.open(tmp_path))
    a.keys.rotate()
    token = a.issue("c-1", ["home:read"])
    assert b.verify(token).sub == "c-1"


def test_rotation_with_another_algorithm_keeps_each_key_on_its_own_alg(tmp_path: Path) -> None:
    """An RS256 key rotated in after ES256 signs new tokens; the ES256 ones still verify."""
    svc = _service(KeyStore.open(tmp_path))
    es = svc.issue("c-1", ["home:read"])
    svc.keys.rotate(algorithm="RS256")
    rs = svc.issue("c-1", ["home:read"])
    assert json.loads(_b64(rs.split(".")[0]))["alg"] == "RS256"
    assert svc.verify(es).sub == svc.verify(rs).sub == "c-1"


def test_retired_key_no_longer_verifies_anywhere(tmp_path: Path) -> None:
    """Retiring a key makes its tokens fail with bad_signature, in this worker and in another one."""
    a, b = _service(KeyStore.open(tmp_path)), _service(KeyStore.open(tmp_path))
    token = a.issue("c-1", ["home:read"])
    assert b.verify(token).sub == "c-1"  # b has it cached now
    old = a.keys.current_kid
    a.keys.rotate()
    a.keys.retire(old)
    b.keys.refresh(max_age=0)
    for svc in (a, b):
        with pytest.raises(Unauthorized) as info:
            svc.verify(token)
        assert info.value.code == "token.bad_signature"


def test_retiring_the_current_or_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """The current key cannot be retired (rotate first), and an unknown kid is a KeyError."""
    store = KeyStore.open(tmp_path)
    with pytest.raises(ValueError, match="rotate before retiring"):
        store.retire(store.current_kid)
    with pytest.raises(KeyError):
        store.retire("no-such-kid")


@posix_only
def test_loose_permissions_are_tightened(
    tmp_path: Path, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key file readable by others is restricted to 0600 (with a warning) before use."""
    KeyStore.open(tmp_path)
    key_file.chmod(0o644)
    store = KeyStore.open(tmp_path)
    assert store.current_kid
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a signing key set"),
        (b'{"keys": []}', "not a signing key set"),
        (b'{"keys": [{"kty": "EC"}], "current_kid": "x"}', "$.keys[0]: not a valid JWK"),
        (b'{"keys": [], "current_kid": "x"}', "$.current_kid"),
    ],
)
def test_corrupt_key_file_names_the_file_and_problem(
    tmp_path: Path, key_file: Path, content: bytes, message: str
) -> None:
    """A damaged key file is refused with an error naming the file and what is wrong."""
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    with pytest.raises(SigningKeyError) as info:
        KeyStore.open(tmp_path)
    assert str(key_file) in str(info.value)
    assert message in str(info.value)


def test_public_only_key_is_refused(tmp_path: Path, key_file: Path) -> None:
    """A key set holding only a public key cannot sign, so it is refused."""
    store = KeyStore.open(tmp_path)
    public = store.public_jwks()
    key_file.write_text(json.dumps({**public, "current_kid": store.current_kid}))
    with pytest.raises(SigningKeyError, match="private part"):
        KeyStore.open(tmp_path)


def test_unsupported_algorithm_is_refused(tmp_path: Path) -> None:
    """Only asymmetric algorithms can be chosen: HS256 is refused at construction."""
    with pytest.raises(ValueError, match="unsupported signing algorithm 'HS256'"):
        KeyStore(tmp_path / KEY_FILE_NAME, algorithm="HS256")


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
