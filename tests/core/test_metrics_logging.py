"""Structured logs: JSON lines, and the request id on every line written while serving a request."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
from fulcrum_core.observability.logging import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    configure_logging,
    new_request_id,
)


class _Collect(logging.Handler):
    """Keeps records, after the request-id filter has annotated them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def dispatch_log() -> Iterator[_Collect]:
    """Records of the ``fulcrum.dispatch`` logger during the test."""
    handler = _Collect()
    logger = logging.getLogger("fulcrum.dispatch")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("header", "kept"), [("abc-123", True), ("", False), ("bad id!", False), ("x" * 65, False)]
)
def test_request_id_header_is_kept_only_when_well_formed(header: str, kept: bool) -> None:
    """A well-formed id is used as is; anything else is replaced by a fresh 32-hex id."""
    got = new_request_id(header)
    assert (got == header) is kept
    if not kept:
        assert len(got) == 32
        assert int(got, 16) >= 0


def test_json_line_carries_the_request_id() -> None:
    """A record formatted inside a request is one JSON object naming the level, logger and request id."""
    token = REQUEST_ID.set("req-7")
    try:
        record = logging.LogRecord("fulcrum.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world"
    assert line["level"] == "warning"
    assert line["logger"] == "fulcrum.test"
    assert line["request_id"] == "req-7"


def test_json_line_includes_the_exception() -> None:
    """An exception's traceback travels inside the JSON line, keeping it one line."""
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: bad" in json.loads(text)["exception"]


def test_configure_logging_installs_one_handler() -> None:
    """Calling configure_logging twice leaves a single JSON handler on the root logger."""
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("warning")
        configure_logging("info")
        ours = [h for h in root.handlers if h.get_name() == "fulcrum-json"]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, JsonFormatter)
    finally:
        for h in [h for h in root.handlers if h.get_name() == "fulcrum-json"]:
            root.removeHandler(h)
        root.setLevel(level)


def test_plugin_failure_log_names_the_request(make_app: Any, kit: Any, dispatch_log: _Collect) -> None:
    """The dispatcher's line about a failed plugin carries the id the client sent, echoed in the response."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("down")

    app = make_app(kit.plugin("bad", home_slot_offers=boom))
    response = app.get("/v1/home", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["request_id"] == "trace-42"
    [record] = [r for r in dispatch_log.records if "bad" in r.getMessage()]
    assert record.request_id == "trace-42"  # type: ignore[attr-defined]


def test_even_a_401_carries_a_request_id(make_app: Any) -> None:
    """The id is assigned before authentication, so refusals can be traced too."""
    response = make_app().client.get("/v1/home")
    assert response.status_code == 401
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_the_servers_line_about_a_refusal_names_the_request(make_app: Any, token: str | None) -> None:
    """A 401 raised by the authentication middleware is answered by litestar's exception handling,
    outside the request-id middleware; the server's access line, written while the response starts
    (as uvicorn's is), still carries the request's id."""
    import asyncio

    app = make_app().client.app
    seen: dict[str, Any] = {}
    headers = [(b"host", b"testserver"), (b"x-request-id", b"refused-7")]
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/v1/home", "raw_path": b"/v1/home", "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["request_id"] = REQUEST_ID.get()

    async def serve() -> str | None:
        await asyncio.create_task(app(scope, receive, send))  # a task per request, as servers do
        assert seen == {"status": 401, "request_id": "refused-7"}
        seen.clear()
        await app({**scope, "state": {}}, receive, send)  # in the caller's own task, as in-process clients do
        return REQUEST_ID.get()

    assert asyncio.run(serve()) is None  # the id named the refusal, then was undone: nothing leaks
    assert seen == {"status": 401, "request_id": "refused-7"}


def test_log_json_survives_the_app_and_names_the_request(
    make_app: Any, kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``log_json`` the app's lines reach stderr as JSON with their request id: litestar's own
    logging setup, run as the app is built, must not replace the JSON handler on the root logger."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("down")

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        app = make_app(kit.plugin("bad", home_slot_offers=boom), log_json=True)
        assert app.get("/v1/home", headers={"X-Request-ID": "trace-43"}).status_code == 200
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "bad" in line]
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    assert lines, "no JSON line about the failed plugin on stderr"
    assert all(line["request_id"] == "trace-43" for line in lines), lines


def test_the_servers_own_lines_are_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn gives its loggers text handlers that do not propagate; with JSON logs its lines
    (startup, shutdown, an exception in the app) are JSON lines like every other."""
    import uvicorn.config

    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # as uvicorn sets itself up
    root = logging.getLogger()
    level = root.level
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False  # as uvicorn leaves it with access_log=False
    try:
        configure_logging("info")
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        access.info("GET /v1/home 200")  # stays off
        err = capsys.readouterr().err
    finally:
        for h in [h for h in root.handlers if h.get_name() == "fulcrum-json"]:
            root.removeHandler(h)
        root.setLevel(level)
    [line] = err.splitlines()
    assert json.loads(line)["message"] == "Started server process [1]"


def test_the_log_level_applies_without_log_json(tmp_path: Any) -> None:
    """Text logs (litestar's setup) take ``log_level`` as the root level; it used to stay INFO."""
    from types import SimpleNamespace

    from fulcrum_core.observability.setup import logging_config
    from fulcrum_core.settings import Settings

    runtime: Any = SimpleNamespace(settings=Settings(state_dir=str(tmp_path), log_level="warn"))
    config: Any = logging_config(runtime)
    assert config.root["level"] == "WARN"


def test_with_log_json_the_startup_lines_are_json_too(
    settings: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A branch file refused while the host starts was a bare text line among the JSON ones (written
    before the JSON handler existed); logging is set up before the runtime is built."""
    import msgspec
    from fulcrum_core.app import create_app

    branches = tmp_path / "branches"
    branches.mkdir()
    (branches / "hq.toml").write_text("[plugins.pension]\nenabeld = true\n", encoding="utf-8")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        app = create_app(msgspec.structs.replace(settings, branches_dir=str(branches), log_json=True))
        err = capsys.readouterr().err
        # Never started, so its shutdown hooks will not run: close what building it opened (the
        # admission gate's read left a SQLite connection in the pool, otherwise closed by the collector).
        app.state.runtime.dispatcher.close()
        app.state.runtime.db.dispose()
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    lines = [line for line in err.splitlines() if "enabeld" in line]
    assert lines, err
    assert [json.loads(line)["logger"] for line in lines] == ["fulcrum.branches"] * len(lines)
