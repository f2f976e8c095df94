"""Structured JSON log lines, each carrying the id of the request it was written for.

``RequestIdMiddleware`` (outermost) takes a well-formed ``X-Request-ID`` header or makes a new id,
puts it in a context variable and in ``scope["state"]`` (where handlers read it); the
``echo_request_id`` hook returns it in every response's ``X-Request-ID``, and gives one to the answers
litestar sends before any middleware runs (404, 405). The context variable
follows the request into tasks and worker threads (the dispatcher copies the context), so a
plugin's failure logged deep in the dispatcher names the request. ``configure_logging`` installs
the JSON formatter on the root logger, once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID",
    "REQUEST_ID_WORDS",
    "STRUCTURED_FIELDS",
    "JsonFormatter",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "configure_logging",
    "echo_request_id",
    "is_request_id",
    "new_request_id",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("fulcrum_request_id", default=None)
"""The id of the request being served in this context, or None outside a request."""

STRUCTURED_FIELDS = ("plugin", "hook", "transaction_id", "partner_request_id")
"""``extra=`` keys a JSON line carries as fields of its own when a record has them (a plugin's failure:
which plugin, which hook, and the request id a partner was given, to find the line from its report)."""

_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")  # whole value only (fullmatch: no trailing newline)
_HANDLER_NAME = "fulcrum-json"
_ECHO_HEADER = b"x-request-id"
_encoder = msgspec.json.Encoder()


class _Ids:
    """Unique ids without a system call each: a random per-process prefix and a counter.

    ``uuid4()`` reads the OS random source on every call, which showed up at ~5 % of the home page's
    CPU in the profile; ids need to be unique, not unpredictable (they are no secret). The prefix is
    drawn on first use and forgotten in a forked child (``os.register_at_fork``, registered then),
    so workers forked from one parent never share ids and no request pays for a ``getpid`` call.
    """

    def __init__(self) -> None:
        self._prefix = ""
        self._next = itertools.count()
        self._watching_forks = False

    def _forget(self) -> None:
        self._prefix = ""

    def new(self) -> str:
        if not self._prefix:
            if not self._watching_forks and hasattr(os, "register_at_fork"):  # POSIX only
                os.register_at_fork(after_in_child=self._forget)
                self._watching_forks = True
            self._prefix = secrets.token_hex(8)
            self._next = itertools.count()
        return f"{self._prefix}{next(self._next):016x}"


_ids = _Ids()


REQUEST_ID_WORDS = "1–64 letters, digits, '.', '_' or '-'"
"""What a request id the host gives (its own, or a client's ``X-Request-Id`` it keeps) is made of."""


def is_request_id(value: str) -> bool:
    """True when ``value`` is an id the host may give a request: :data:`REQUEST_ID_WORDS`."""
    return _WELL_FORMED.fullmatch(value) is not None


def new_request_id(header: str | None) -> str:
    """``header`` when it is a well-formed id (1–64 of ``A-Za-z0-9._-``), else a new unique 32-hex id."""
    return header if header and is_request_id(header) else _ids.new()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` from :data:`REQUEST_ID` (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only annotates it."""
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        for field in STRUCTURED_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return _encoder.encode(line).decode()
        except UnicodeEncodeError:  # see _sendable
            return _encoder.encode({key: _sendable(value) for key, value in line.items()}).decode()


def _sendable(value: Any) -> Any:
    """``value`` with any text UTF-8 cannot hold (a lone surrogate) written as ``\\udXXX``.

    A plugin's exception message, or its own log line, may carry such text; JSON cannot, so the encoder
    raised, logging printed its multi-line "--- Logging error ---" traceback to stderr among the JSON
    lines, and the line itself (a plugin left out of a page, say) was lost."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


_SERVER_LOGGERS = ("uvicorn", "uvicorn.error")
"""The server's loggers, which it gives handlers of its own (plain text) that stop at them. Its access
log is left as the server set it up (``fulcrum serve`` turns it off)."""


def configure_logging(level: str = "INFO") -> logging.Handler:
    """Send every log line to stderr as JSON with its request id; calling it again replaces the handler.

    The server's own lines (startup, shutdown, errors) are passed up to the JSON handler as well,
    instead of being written in the server's text format."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def _header_of(scope: Scope) -> str | None:
    """The request's ``X-Request-ID`` header, decoded, or None (ASGI servers lower-case header names)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestIdMiddleware:
    """ASGI middleware giving every HTTP request an id (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with :data:`REQUEST_ID` set and the id echoed in ``X-Request-ID``."""
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header_of(scope))
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)


_RESTORE = "request_id.restore"
"""Scope-state key of the token that undoes :func:`echo_request_id` setting the id for a refusal."""


async def echo_request_id(message: Message, scope: Scope) -> None:
    """``before_send`` hook: put the request's id in ``X-Request-ID`` of every response.

    A hook rather than a send wrapper in the middleware, because error responses (a 401 raised by
    authentication) are sent by litestar's exception handling outside the middleware stack. It runs
    for every message, so it edits the raw header list instead of building ``MutableScopeHeaders``;
    an ``X-Request-ID`` the handler set is replaced, as ``MutableScopeHeaders[...] =`` would.
    """
    state = scope.get("state", {})
    if message["type"] != "http.response.start":
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            token = state.pop(_RESTORE, None)
            if token is not None:
                with contextlib.suppress(ValueError):  # set in another context: nothing to undo here
                    REQUEST_ID.reset(token)
        return
    request_id = state.get("request_id")
    if not isinstance(request_id, str):
        if scope.get("type") != ScopeType.HTTP:
            return
        # No route matched (404, 405): litestar answered before any middleware ran. The response still
        # gets an id, the client's well-formed one or a new one, as every other response does.
        request_id = new_request_id(_header_of(scope))
        if "state" in scope:
            state["request_id"] = request_id
    if REQUEST_ID.get() != request_id:
        # A refusal raised by middleware (401, 403, 429) is sent by litestar's exception handling,
        # outside RequestIdMiddleware: set the id again while the response is sent, so the server's
        # line about it (written as the response starts) names it too; undone before the last body.
        state[_RESTORE] = REQUEST_ID.set(request_id)
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers or ())
    for name, _ in headers:
        if name.lower() == _ECHO_HEADER:
            headers[:] = [h for h in headers if h[0].lower() != _ECHO_HEADER]
            break
    headers.append((_ECHO_HEADER, request_id.encode("latin-1")))
