"""The token signing keys: a JWK Set on disk that every worker sharing ``state_dir`` agrees on.

The file ``<state_dir>/signing-keys.json`` (mode 0600) is a JWK Set (RFC 7517 §5) of *private* keys
plus two members of our own, which RFC 7517 lets readers ignore::

    {"keys": [{"kty": "EC", "crv": "P-256", "kid": "…", "alg": "ES256", "use": "sig", "d": "…", …}],
     "current_kid": "…",                # the key new tokens are signed with
     "created_at": {"<kid>": 1767225600}}  # when each key was made (drives rotation and retirement)

Each key carries its own ``alg``: a token is verified only with the algorithm of the key its ``kid``
names, so old keys of another algorithm keep verifying after a migration. ``kid`` is the key's
RFC 7638 thumbprint.

Concurrency: the first worker to need a key writes a complete temporary file and hard-links it into
place, which fails if another worker won the race (the loser then reads the winner's file). Rotation
and retirement rewrite the file under an advisory lock (``fcntl``; no lock on Windows) and swap it in
with an atomic rename. Other workers notice the change (inode, size, mtime) within a second, or at
once when a token names a ``kid`` they have not seen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, KeyParameters, RSAKey

__all__ = ["KEY_FILE_NAME", "SUPPORTED_ALGORITHMS", "KeyStore", "SigningKeyError"]

log = logging.getLogger(__name__)

KEY_FILE_NAME: Final = "signing-keys.json"

SigningAlgorithm = Literal["ES256", "RS256"]
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset({"ES256", "RS256"})
"""Asymmetric algorithms only: a resource server holding a shared secret could mint tokens."""

_RSA_BITS: Final = 2048
_RECHECK_SECONDS: Final = 1.0
"""How often a worker looks at the key file for another worker's rotation."""


class SigningKeyError(RuntimeError):
    """The key file is unreadable, corrupt or unsafe; the message names the file and the problem."""


class _KeyFile(msgspec.Struct, frozen=True):
    """The on-disk shape (unknown members are kept by JWKS readers and ignored here)."""

    keys: list[dict[str, Any]]
    current_kid: str
    created_at: dict[str, int] = {}


class _Snapshot(msgspec.Struct, frozen=True):
    """One loaded version of the file; replaced whole, so readers never see a half-update."""

    keys: dict[str, Key]
    current_kid: str
    created_at: dict[str, int]
    fingerprint: tuple[int, int, int, int]


def _unsupported(algorithm: str) -> str:
    return f"unsupported signing algorithm {algorithm!r}; use one of {sorted(SUPPORTED_ALGORITHMS)}"


def _generate(algorithm: str) -> Key:
    """A new private key for ``algorithm`` with ``kid`` (its thumbprint), ``alg`` and ``use``."""
    params: KeyParameters = {"alg": algorithm, "use": "sig"}
    if algorithm == "ES256":
        return ECKey.generate_key("P-256", parameters=params, auto_kid=True)
    if algorithm == "RS256":
        return RSAKey.generate_key(_RSA_BITS, parameters=params, auto_kid=True)
    raise ValueError(_unsupported(algorithm))


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or link durable (POSIX only; a no-op where directories cannot be opened)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyStore:
    """The signing key set of one ``state_dir``; safe to share between threads and processes."""

    def __init__(
        self, path: Path, *, algorithm: str = "ES256", monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(_unsupported(algorithm))
        self.path = path
        self.algorithm = algorithm
        self._monotonic = monotonic
        self._snapshot: _Snapshot | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: str | Path, *, algorithm: str = "ES256") -> KeyStore:
        """The store for ``state_dir``, loading its key file or creating it (with one key) if absent."""
        store = cls(Path(state_dir) / KEY_FILE_NAME, algorithm=algorithm)
        store.refresh(max_age=0)
        return store

    # -- reading ---------------------------------------------------------------------------------

    @property
    def current_kid(self) -> str:
        """The ``kid`` new tokens are signed with."""
        return self._current().current_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every ``kid`` tokens are accepted from, current one included."""
        return tuple(self._current().keys)

    def signing_key(self) -> Key:
        """The current private key (after a cheap check whether another worker rotated it)."""
        snap = self._current()
        return snap.keys[snap.current_kid]

    def verification_key(self, kid: str) -> Key | None:
        """The key named ``kid``, rereading the file once if it is unknown; ``None`` if still unknown."""
        key = self._current().keys.get(kid)
        if key is None and self.refresh(max_age=0):
            key = self._current().keys.get(kid)
        return key

    def created_at(self, kid: str) -> int | None:
        """When key ``kid`` was made (Unix seconds), if recorded."""
        return self._current().created_at.get(kid)

    def public_jwks(self) -> dict[str, Any]:
        """The public half of every key as a JWK Set, ready to publish (current key first)."""
        snap = self._current()
        order = [snap.current_kid, *(k for k in snap.keys if k != snap.current_kid)]
        return {"keys": [snap.keys[kid].as_dict(private=False) for kid in order]}

    @property
    def version(self) -> tuple[int, int, int, int]:
        """Changes whenever the loaded key set changes; caches of verified tokens key on it.

        Read on every request (the verified-token cache's hit path), so the once-a-second file check
        of ``refresh`` is tested inline here instead of through ``_current``."""
        snap = self._snapshot
        if snap is None or self._monotonic() - self._checked_at >= _RECHECK_SECONDS:
            snap = self._current()
        return snap.fingerprint

    def refresh(self, *, max_age: float = _RECHECK_SECONDS) -> bool:
        """Reload the file if it changed on disk (checked at most every ``max_age`` seconds).

        Creates the file when it does not exist. Returns True when a different key set was loaded.
        """
        now = self._monotonic()
        if self._snapshot is not None and now - self._checked_at < max_age:
            return False
        with self._lock:
            snap = self._snapshot
            self._checked_at = now
            try:
                fingerprint = _fingerprint(self.path.stat())
            except FileNotFoundError:
                self._create_if_absent()
                fingerprint = _fingerprint(self.path.stat())
            if snap is not None and fingerprint == snap.fingerprint:
                return False
            self._snapshot = self._load()[1]
            return snap is not None

    def _current(self) -> _Snapshot:
        self.refresh()
        snap = self._snapshot
        if snap is None:  # pragma: no cover - refresh() always leaves a snapshot or raises
            raise SigningKeyError(f"{self.path}: no key set loaded")
        return snap

    def _load(self) -> tuple[_KeyFile, _Snapshot]:
        """Read and validate the whole file: every key importable, private, with a kid and our alg."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise SigningKeyError(f"{self.path}: cannot read the signing key file: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            self._check_permissions(st)
            raw = f.read()
        try:
            data = msgspec.json.decode(raw, type=_KeyFile)
        except msgspec.DecodeError as exc:
            raise SigningKeyError(f"{self.path}: not a signing key set: {exc}") from exc
        keys: dict[str, Key] = {}
        for i, jwk in enumerate(data.keys):
            try:
                key = JWKRegistry.import_key(jwk)
            except (JoseError, ValueError, TypeError) as exc:
                raise SigningKeyError(f"{self.path}: $.keys[{i}]: not a valid JWK: {exc}") from exc
            kid, alg = key.kid, key.alg
            if not kid or alg not in SUPPORTED_ALGORITHMS or not key.is_private:
                raise SigningKeyError(
                    f"{self.path}: $.keys[{i}]: each key needs a kid, an alg among "
                    f"{sorted(SUPPORTED_ALGORITHMS)} and its private part"
                )
            keys[kid] = key
        if data.current_kid not in keys:
            raise SigningKeyError(f"{self.path}: $.current_kid: {data.current_kid!r} is not one of the keys")
        snap = _Snapshot(
            keys=keys,
            current_kid=data.current_kid,
            created_at=dict(data.created_at),
            fingerprint=_fingerprint(st),
        )
        return data, snap

    def _check_permissions(self, st: os.stat_result) -> None:
        """Private keys must not be readable by others; tighten a loose file rather than serve it."""
        if sys.platform == "win32" or not stat.S_IMODE(st.st_mode) & 0o077:
            return
        log.warning("signing key file %s was readable by others; restricting it to mode 0600", self.path)
        try:
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise SigningKeyError(
                f"{self.path}: readable by others and cannot be restricted to mode 0600: {exc.strerror}"
            ) from exc

    # -- writing ---------------------------------------------------------------------------------

    def rotate(self, *, algorithm: str | None = None) -> str:
        """Make a new current key; old keys stay for verification until ``retire``. Returns its kid."""
        key = _generate(algorithm or self.algorithm)
        kid = str(key.kid)
        with self._exclusive():
            data = self._read_locked()
            keys = [*data.keys, key.as_dict(private=True)]
            created = {**data.created_at, kid: int(time.time())}
            self._replace(_KeyFile(keys=keys, current_kid=kid, created_at=created))
        self.refresh(max_age=0)
        return kid

    def retire(self, kid: str) -> None:
        """Stop accepting tokens signed by ``kid``. The current key cannot be retired (rotate first)."""
        with self._exclusive():
            data = self._read_locked()
            if kid == data.current_kid:
                raise ValueError(f"key {kid!r} is the current signing key; rotate before retiring it")
            keys = [k for k in data.keys if k.get("kid") != kid]
            if len(keys) == len(data.keys):
                raise KeyError(kid)
            created = {k: v for k, v in data.created_at.items() if k != kid}
            self._replace(_KeyFile(keys=keys, current_kid=data.current_kid, created_at=created))
        self.refresh(max_age=0)

    def _create_if_absent(self) -> None:
        """Write a one-key set unless the file exists; the loser of a race keeps the winner's file."""
        key = _generate(self.algorithm)
        kid = str(key.kid)
        body = _KeyFile(keys=[key.as_dict(private=True)], current_kid=kid, created_at={kid: int(time.time())})
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._write_temp(msgspec.json.encode(body))
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        log.info("created signing key %s in %s", kid, self.path)

    def _read_locked(self) -> _KeyFile:
        if not self.path.exists():
            self._create_if_absent()
        return self._load()[0]

    def _replace(self, body: _KeyFile) -> None:
        tmp = self._write_temp(msgspec.json.encode(body))
        try:
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)

    def _write_temp(self, payload: bytes) -> Path:
        """A fully written, fsynced 0600 file next to the key file (same filesystem, so link/rename work)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                if sys.platform != "win32":
                    os.fchmod(f.fileno(), 0o600)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialize read-modify-write of the key file across processes (advisory lock file)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if sys.platform != "win32":
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock
