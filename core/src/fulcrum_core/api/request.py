"""The app's request class: litestar's, with a body that is not JSON, or not declared JSON in UTF-8,
refused in the host's words."""

from __future__ import annotations

import copy
import re
from typing import Any

import msgspec
from fulcrum_sdk._in_words import NOT_UTF8, not_json
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException

from fulcrum_core.api.media_types import json_body_refusal
from fulcrum_core.errors import BadRequest
from fulcrum_core.transactions.checks import named_twice, named_twice_in_words

__all__ = ["FulcrumRequest"]


class FulcrumRequest(Request[Any, Any, Any]):
    """``Request.json`` turns msgspec's ``UnicodeDecodeError`` and ``RecursionError`` into the 400 any
    malformed body gets.

    msgspec raises ``UnicodeDecodeError`` rather than ``DecodeError`` for a string holding bytes that
    are not UTF-8, and ``RecursionError`` for a document nested about a thousand levels deep; litestar
    only maps ``DecodeError``: without this such a body is a 500.
    """

    async def json(self) -> Any:
        """The decoded JSON body (litestar's), or ``SerializationException`` (a 400) saying in words why it
        is not JSON, as the transactions pipeline says it (litestar passes on msgspec's own words).

        First the body must be declared JSON in UTF-8 (``media_types``): litestar decoded any body as
        UTF-8 JSON, whatever its ``Content-Type`` said."""
        refusal = json_body_refusal(self.scope, await self.body())
        if refusal is not None:
            raise refusal
        try:
            decoded = await super().json()
        except SerializationException as exc:
            if not isinstance(exc.__cause__, msgspec.DecodeError):
                raise
            raise SerializationException(not_json(str(exc.__cause__), await self.body())) from None
        except UnicodeDecodeError:
            raise SerializationException(not_json(NOT_UTF8)) from None
        except RecursionError:  # msgspec gives up on nesting deeper than the interpreter allows
            raise SerializationException("the body is nested too deeply") from None
        self._judge_strictly(decoded, await self.body())
        return decoded

    def _judge_strictly(self, decoded: Any, raw: bytes) -> None:
        """Refuse a body that names a member twice (msgspec keeps the last value, another reader the
        first) and one that fits the route's body Struct only in litestar's lax reading, where
        ``"true"`` and ``1`` were ``true`` (a review's checklist confirmed by them) and ``"5"`` was 5:
        JSON bodies are read as strictly as the transaction pipeline reads its parameters."""
        twice = named_twice(raw)
        if twice is not None:
            raise BadRequest(named_twice_in_words(twice), code="invalid-input", field=twice)
        handler = self.scope.get("route_handler")
        signature = getattr(handler, "parsed_fn_signature", None)
        data = signature.parameters.get("data") if signature is not None else None
        body = data.annotation if data is not None else None
        if not (isinstance(body, type) and issubclass(body, msgspec.Struct)):
            return
        try:
            msgspec.convert(decoded, body)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).rpartition(" - at `$.")
            if not message:  # about the body itself (``$``): litestar's own words stay
                return
            where = _named_entry(decoded, body, where.removesuffix("`"))
            raise ValidationException(extra=[{"key": where, "source": "body", "message": message}]) from None


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    """A msgspec path (``grant[0]``, ``a.b``) as keys and indexes."""
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def _named_entry(decoded: Any, body: type[Any], where: str) -> str:
    """``where`` with msgspec's ``[...]`` (some value of a mapping: ``checklist[...]``) replaced by the
    key whose value is refused (``checklist.data_minimised``), found by trying each entry alone."""
    head, found, tail = where.partition("[...]")
    steps = _steps(head)
    try:
        mapping: Any = decoded
        for step in steps:
            mapping = mapping[step]
    except (KeyError, IndexError, TypeError):
        return where
    if not found or not isinstance(mapping, dict) or not steps:
        return where
    for key, value in mapping.items():
        trial = copy.deepcopy(decoded)
        parent = trial
        for step in steps[:-1]:
            parent = parent[step]
        parent[steps[-1]] = {key: value}
        try:
            msgspec.convert(trial, body)
        except msgspec.ValidationError as exc:
            if f"`$.{head}[...]" in str(exc):  # this entry, not another field further on
                return f"{head}.{key}{tail}"
    return where
