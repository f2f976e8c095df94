"""The registry end to end over a real server: publish plugins/pension built by ``uv build``, review it
through HTTP, install it from the PEP 503 index (a token as Basic ``__token__`` in the index URL) into
a fresh venv, and see suspension close the index; without the token nothing installs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings
from fulcrum_registry import REVIEW_CHECKLIST

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
PENSION = {
    "id": "pension-dept",
    "name": "养老金融部",
    "kind": "department",
    "contact": "pension@bank.example",
}


class Server:
    """A uvicorn server on a free 127.0.0.1 port running the real app, stopped at teardown."""

    def __init__(self, settings: Settings) -> None:
        runtime = build_runtime(settings, load_entry_points=False)
        runtime.db.upgrade()
        self.runtime = runtime
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings, runtime=runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def jwt(self, sub: str, *scopes: str, publisher: str | None = None) -> str:
        """A signed staff token."""
        return self.runtime.tokens.issue(sub, scopes, kind="staff", publisher=publisher)

    def token(self, sub: str, *scopes: str, publisher: str | None = None) -> dict[str, str]:
        """``Authorization`` headers for a staff token."""
        return {"Authorization": f"Bearer {self.jwt(sub, *scopes, publisher=publisher)}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app served by uvicorn on a free port, with its own state directory and SQLite file."""
    settings = Settings(
        state_dir=str(tmp_path / "state"),
        database_url=f"sqlite:///{tmp_path / 'fulcrum.db'}",
        branches_dir=str(tmp_path / "no-branches"),
    )
    with Server(settings) as running:
        yield running


def _uv(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert UV is not None
    return subprocess.run([UV, *args], capture_output=True, text=True, check=check, timeout=300)


def _install(venv: Path, index: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``uv pip install fulcrum-pension`` from ``index`` only (the SDK is not a plugin: --no-deps)."""
    _uv("venv", str(venv), "--python", sys.executable, "--quiet")
    return _uv(
        "pip",
        "install",
        "--python",
        str(venv / "bin" / "python"),
        "--index-url",
        index,
        "--no-deps",
        "--no-cache",
        "fulcrum-pension",
        check=check,
    )


def test_publish_review_install_and_suspend(server: Server, tmp_path: Path) -> None:
    """plugins/pension built by uv is published and approved over HTTP, installs from the index into a
    fresh venv with its hash checked, and once suspended can no longer be installed."""
    if UV is None:
        pytest.skip("uv is not on PATH")
    dist = tmp_path / "dist"
    _uv("build", str(ROOT / "plugins" / "pension"), "--wheel", "--out-dir", str(dist), "--quiet")
    (wheel,) = dist.glob("*.whl")
    review = server.token("rita", "registry:review")
    with httpx.Client(base_url=server.url + "/registry/v1", timeout=30) as http:
        assert http.post("/publishers", json=PENSION, headers=review).status_code == 201
        publisher = server.token("paul", "registry:publish", publisher="pension-dept")
        submitted = http.post(
            "/releases", files={"wheel": (wheel.name, wheel.read_bytes())}, headers=publisher
        )
        assert submitted.status_code == 201, submitted.text
        release: dict[str, Any] = submitted.json()["release"]
        assert release["state"] == "in_review"
        assert release["failed_checks"] == []
        assert release["approvals_needed"] == 2
        body = {"decision": "approve", "checklist": dict.fromkeys(REVIEW_CHECKLIST, True)}
        path = f"/releases/{release['id']}/review"
        assert http.post(path, json=body, headers=review).json()["release"]["state"] == "in_review"
        second = http.post(path, json=body, headers=server.token("rob", "registry:review"))
        assert second.json()["release"]["state"] == "approved"

        bare = server.url + "/registry/simple/"
        assert httpx.get(bare).status_code == 401
        no_token = _install(tmp_path / "venv-no-token", bare, check=False)
        assert no_token.returncode != 0
        deploy = server.jwt("deploy", "registry:review")
        index = f"http://__token__:{deploy}@127.0.0.1:{server.port}/registry/simple/"
        page = httpx.get(index + "fulcrum-pension/").text
        assert f"#sha256={release['artifact']['sha256']}" in page
        _install(tmp_path / "venv-ok", index)
        version = subprocess.run(
            [
                str(tmp_path / "venv-ok" / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('fulcrum-pension'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert version == release["version"]

        suspended = http.post(
            f"/releases/{release['id']}/suspend", json={"reason": "incident"}, headers=review
        )
        assert suspended.json()["release"]["state"] == "suspended"
    assert httpx.get(index + "fulcrum-pension/").status_code == 404
    file_url = f"{server.url}/registry/files/{release['artifact']['sha256']}/{wheel.name}"
    assert httpx.get(file_url, headers=server.token("deploy", "registry:review")).status_code == 404
    refused = _install(tmp_path / "venv-refused", index, check=False)
    assert refused.returncode != 0
    assert "fulcrum-pension" in refused.stderr
