"""Fixtures for the registry tests: a SQLite registry, a fake clock, publishers, and a wheel builder.

Wheels are built with zipfile, correct by default and broken on request through ``WheelSpec`` knobs,
so every check can be made to fail without a build backend.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_registry import REVIEW_CHECKLIST, RegistryService
from fulcrum_registry.models import RegistryBase
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from tests.tomlish import to_toml


def base_manifest(
    plugin_id: str = "demo", publisher: str = "pension-dept", **overrides: Any
) -> dict[str, Any]:
    """A manifest that passes every check for a department publisher (as plain TOML-able data)."""
    manifest: dict[str, Any] = {
        "id": plugin_id,
        "name": {"zh-CN": "演示插件", "en": "Demo plugin"},
        "description": {"zh-CN": "用于测试的插件", "en": "A plugin for tests"},
        "publisher": publisher,
        "kind": "department",
        "placement": "in_process",
        "sdk": ">=0.1,<1",
        "hooks": ["home_slot_offers"],
        "slots": ["home.notice/v1"],
        "scopes": {"required": {"slot:home.notice": "show short notices on the home page"}, "optional": {}},
        "owner": {"name": "Demo team", "email": "demo@bank.example"},
    }
    manifest.update(copy.deepcopy(overrides))
    return manifest


def record_line(name: str, data: bytes) -> str:
    """One RECORD line: path, urlsafe base64 sha256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


class WheelSpec(msgspec.Struct, kw_only=True):
    """What to put in a wheel; each knob breaks one thing."""

    dist: str = "fulcrum_demo"
    version: str = "1.0.0"
    package: str = "fulcrum_demo"
    manifest: Mapping[str, Any] | str | None = msgspec.field(default_factory=base_manifest)
    entry_points: str | None = "[fulcrum]\ndemo = fulcrum_demo.plugin\n"
    metadata_version: str | None = None  # None: same as ``version``
    extra_files: dict[str, bytes] = msgspec.field(default_factory=dict)
    omit: tuple[str, ...] = ()  # dist-info files to leave out: "WHEEL", "METADATA", "RECORD"
    tamper: Callable[[dict[str, bytes]], None] | None = None  # edits files after RECORD is written


def build_wheel(directory: Path, spec: WheelSpec | None = None, **knobs: Any) -> Path:
    """Write ``<dist>-<version>-py3-none-any.whl`` into ``directory`` and return its path."""
    spec = spec or WheelSpec(**knobs)
    info = f"{spec.dist}-{spec.version}.dist-info"
    files: dict[str, bytes] = {
        f"{spec.package}/__init__.py": b'"""Demo plugin."""\n',
        f"{spec.package}/plugin.py": b"from fulcrum_sdk import hookimpl\n",
    }
    if spec.manifest is not None:
        text = spec.manifest if isinstance(spec.manifest, str) else to_toml(spec.manifest)
        files[f"{spec.package}/fulcrum-plugin.toml"] = text.encode()
    files.update(spec.extra_files)
    meta_version = spec.metadata_version or spec.version
    name = spec.dist.replace("_", "-")
    dist_info = {
        "METADATA": f"Metadata-Version: 2.4\nName: {name}\nVersion: {meta_version}\n".encode(),
        "WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if spec.entry_points is not None:
        dist_info["entry_points.txt"] = spec.entry_points.encode()
    for name, data in dist_info.items():
        if name not in spec.omit:
            files[f"{info}/{name}"] = data
    if "RECORD" not in spec.omit:
        lines = [record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
        files[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    if spec.tamper is not None:
        spec.tamper(files)
    path = directory / f"{spec.dist}-{spec.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


class FakeClock:
    """A clock that moves one second per reading, so every event has its own timestamp."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; durability is not what these tests are about.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite database file with the registry tables and foreign keys enforced."""
    eng = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    event.listen(eng, "connect", _sqlite_pragmas)
    RegistryBase.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """The registry's clock in tests."""
    return FakeClock()


@pytest.fixture
def registry(engine: Engine, tmp_path: Path, clock: FakeClock) -> RegistryService:
    """A registry service over the test database, with three publishers of the three kinds."""
    service = RegistryService(sessionmaker(engine), tmp_path / "artifacts", clock, sdk_version="0.2.0")
    for pid, kind in (("pension-dept", "department"), ("branch-0755", "branch"), ("fund-partner", "partner")):
        service.create_publisher(
            {"id": pid, "name": f"{pid} 发布方", "kind": kind, "contact": f"ops@{pid}.example"},
            actor="platform",
        )
    return service


@pytest.fixture
def wheels(tmp_path: Path) -> Callable[..., Path]:
    """Build a wheel in a fresh directory: ``wheels(version="1.1.0", manifest=...)``."""
    counter = iter(range(10_000))

    def make(spec: WheelSpec | None = None, **knobs: Any) -> Path:
        directory = tmp_path / f"wheel-{next(counter)}"
        directory.mkdir()
        return build_wheel(directory, spec, **knobs)

    return make


@pytest.fixture
def submit(registry: RegistryService, wheels: Callable[..., Path]) -> Callable[..., Any]:
    """Build and submit a wheel in one call: ``submit(version="1.1.0", publisher="pension-dept")``."""

    def go(*, publisher: str = "pension-dept", by: str = "alice", **knobs: Any) -> Any:
        path = wheels(**knobs)
        return registry.submit(path.read_bytes(), filename=path.name, publisher_id=publisher, submitted_by=by)

    return go


@pytest.fixture
def approve(registry: RegistryService) -> Callable[..., Any]:
    """Approve with every checklist item confirmed: ``approve(release_id, "bob", grant=[...])``."""

    def go(release_id: int, reviewer: str = "bob", **kwargs: Any) -> Any:
        return registry.approve(
            release_id, reviewer=reviewer, checklist=dict.fromkeys(REVIEW_CHECKLIST, True), **kwargs
        )

    return go


@pytest.fixture
def manifest() -> Callable[..., dict[str, Any]]:
    """The manifest factory: ``manifest(hooks=[...])`` is a passing manifest with keys replaced."""
    return base_manifest


def platform_registry(db: Any, tmp_path: Path, clock: Any) -> RegistryService:
    """The registry over the migrated platform database ``db`` (each backend), with two publishers: the
    department ``pension-dept`` and the partner ``fund-partner``."""
    from sqlalchemy.orm import sessionmaker

    service = RegistryService(
        sessionmaker(bind=db.engine, expire_on_commit=False),
        tmp_path / "artifacts",
        clock,
        read_session_factory=sessionmaker(bind=db.reader, expire_on_commit=False),
        sdk_version="0.2.0",
    )
    for pid, kind in (("pension-dept", "department"), ("fund-partner", "partner")):
        service.create_publisher(
            {"id": pid, "name": f"{pid} 发布方", "kind": kind, "contact": f"ops@{pid}.example"},
            actor="platform",
        )
    return service
