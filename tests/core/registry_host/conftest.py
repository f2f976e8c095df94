"""Fixtures for the host's registry tests: wheels for test plugins, staff tokens, and obeying hosts.

- ``wheel_for`` — a well-formed wheel (RECORD hashes, entry point, manifest) for a ``Manifest``, so
  the registry's checks pass for a test plugin without any build backend.
- ``staff`` — mint staff tokens on a runtime: ``staff(rt, "alice", "registry:publish", publisher=...)``.
- ``obeying_app`` — the real app around chosen plugin objects, with the registry watcher on and a
  short poll interval; yields an :class:`ObeyingApp` (client, runtime, registry service).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.settings import Settings
from fulcrum_registry import REVIEW_CHECKLIST, RegistryService
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.testing import PERSONAS

from tests.tomlish import to_toml

CHECKLIST = dict.fromkeys(REVIEW_CHECKLIST, True)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}


def _record(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    manifest: Manifest,
    version: str | None = None,
    *,
    module: bytes | None = None,
    dist: str | None = None,
) -> Path:
    """Write a wheel for ``manifest`` (id as entry point; its version unless ``version``; ``module`` as
    the package's ``__init__.py``; ``dist`` as the distribution's name, else fulcrum_<id>); return it."""
    version = version or manifest.version or "1.0.0"
    package = "fulcrum_" + manifest.id.replace("-", "_")
    dist = dist or package
    raw = _drop_none(msgspec.to_builtins(msgspec.structs.replace(manifest, version=None)))
    files = {
        f"{package}/__init__.py": module if module is not None else b'"""A test plugin."""\n',
        f"{package}/fulcrum-plugin.toml": to_toml(raw).encode(),
    }
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.4\nName: {dist.replace('_', '-')}\nVersion: {version}\n".encode()
    )
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = f"[fulcrum]\n{manifest.id} = {package}\n".encode()
    lines = [_record(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def wheel_for(tmp_path: Path) -> Callable[..., Path]:
    """``wheel_for(manifest, version=None, dist=None)``: a valid wheel for a test plugin in a fresh
    directory (``dist``: another distribution name than fulcrum_<id>)."""
    counter = iter(range(10_000))

    def build(manifest: Manifest, version: str | None = None, dist: str | None = None) -> Path:
        return make_wheel(tmp_path / f"wheels-{next(counter)}", manifest, version, dist=dist)

    return build


@pytest.fixture
def staff() -> Callable[..., str]:
    """``staff(runtime, sub, *scopes, publisher=None)``: a signed staff token."""

    def mint(runtime: Any, sub: str, *scopes: str, publisher: str | None = None) -> str:
        token: str = runtime.tokens.issue(sub, scopes, kind="staff", publisher=publisher)
        return token

    return mint


def publish(service: RegistryService, wheel: Path, *, publisher: str = "test-bank", by: str = "alice") -> Any:
    """Submit ``wheel`` for ``publisher`` (created if missing) and return the release."""
    try:
        service.get_publisher(publisher)
    except Exception:
        service.create_publisher(
            {"id": publisher, "name": "测试银行", "kind": "department", "contact": "ops@bank.example"},
            actor="platform",
        )
    return service.submit(wheel.read_bytes(), filename=wheel.name, publisher_id=publisher, submitted_by=by)


class ObeyingApp:
    """A running app whose plugin set follows the registry (``service``)."""

    def __init__(self, client: Any, runtime: Any, service: RegistryService) -> None:
        self.client = client
        self.runtime = runtime
        self.service = service

    def home(self) -> dict[str, Any]:
        """``GET /v1/home`` as a synthetic customer; asserts 200."""
        from fulcrum_sdk.scopes import APP_SCOPES

        token = self.runtime.tokens.issue("synthetic-young-professional", APP_SCOPES)
        response = self.client.get("/v1/home", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def obeying_app(
    settings: Settings, migrated_sqlite: Path, tmp_path: Path, anyio_backend: tuple[str, dict[str, bool]]
) -> Iterator[Callable[..., ObeyingApp]]:
    """``obeying_app(*plugins, before=fn, **settings)``: the real app obeying the registry; ``before``
    runs on the migrated database before the app starts. Closed at teardown."""
    from fulcrum_core.app import build_runtime, create_app
    from fulcrum_core.registry_host import registry_of
    from litestar.testing import TestClient

    clients: list[Any] = []

    def build(
        *plugins: object, before: Callable[[RegistryService], None] | None = None, **overrides: Any
    ) -> ObeyingApp:
        conf = msgspec.structs.replace(settings, registry_poll_seconds=0.05, **overrides)
        db_file = tmp_path / "fulcrum.db"
        if not db_file.exists():
            shutil.copyfile(migrated_sqlite, db_file)
        provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
        runtime = build_runtime(
            conf, provider=provider, extra_plugins=plugins, load_entry_points=False, obey_registry=True
        )
        service = registry_of(runtime).service
        if before is not None:
            before(service)
        backend, options = anyio_backend
        client = TestClient(create_app(conf, runtime=runtime), backend=backend, backend_options=options)
        client.__enter__()
        clients.append(client)
        return ObeyingApp(client, runtime, service)

    yield build
    for client in clients:
        client.__exit__(None, None, None)
