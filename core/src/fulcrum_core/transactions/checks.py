"""The pipeline's checks before anything is journaled, as pure functions that raise domain errors.

Status codes: a missing or malformed ``Idempotency-Key`` and a body that is not the JSON object
``{"type": …, "params": {…}}`` are 400; an unknown type, parameters failing the type's schema,
suitability and limits are 422 (well-formed, but refused). Each problem names its field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

import msgspec
from fulcrum_sdk._in_words import NOT_UTF8, dotted, in_words, not_json
from fulcrum_sdk._validate import (
    ResultError,
    check_transaction_result,
    suitability_problem,
    whole_fen,
    wire_name,
)
from fulcrum_sdk.data import RiskProfile
from fulcrum_sdk.errors import TransactionRefused
from fulcrum_sdk.models import LocalizedText, RiskLevel, TransactionResult, TransactionType

from fulcrum_core.errors import BadRequest, CoreError, Forbidden, Unprocessable
from fulcrum_core.problem_types import PLUGIN_REFUSAL
from fulcrum_core.transactions.models import TransactionBody

__all__ = [
    "IDEMPOTENCY_HEADER",
    "ParsedBody",
    "PluginBusyError",
    "PluginFaultError",
    "amount_of",
    "check_amount",
    "check_enabled_for_customer",
    "check_idempotency_key",
    "check_suitability",
    "decode_params",
    "named_twice",
    "named_twice_in_words",
    "param_field",
    "parse_body",
    "refusal",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}\Z")  # visible ASCII, as header values travel safely
# A params Struct's __post_init__ names the field it refuses by starting its message "amount_fen: …".
_PREFIXED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*): ")


class PluginFaultError(CoreError):
    """The owning plugin's own code failed while the host checked a request (nothing was journaled)."""

    status = 502
    default_code = "transaction.plugin_error"


class PluginBusyError(CoreError):
    """The owning plugin's bulkhead is full of requests still being checked (nothing was journaled)."""

    status = 503
    default_code = "transaction.plugin_unavailable"


class ParsedBody(msgspec.Struct, frozen=True):
    """A decoded body and the sha256 of its canonical form (sorted keys, no whitespace)."""

    body: TransactionBody
    request_hash: str


def check_idempotency_key(key: str | None) -> str:
    """The key, or 400 naming the header when it is missing or not 1–255 visible ASCII characters."""
    if key is None or key == "":
        raise BadRequest(
            f"the {IDEMPOTENCY_HEADER} header is required: send a unique value per transaction and "
            "the same value when retrying it",
            code="idempotency.key_missing",
            field=IDEMPOTENCY_HEADER,
        )
    if not _KEY.match(key):
        raise BadRequest(
            f"the {IDEMPOTENCY_HEADER} header must be 1–255 visible ASCII characters",
            code="idempotency.key_invalid",
            field=IDEMPOTENCY_HEADER,
        )
    return key


def _worded(
    exc: msgspec.ValidationError, kind: Any, prefix: str, fields: frozenset[str] = frozenset()
) -> tuple[str, str]:
    """The dotted field an error is about (msgspec's path, plus the field it names) and the problem in
    words (``must be a whole number of fen``, the fields there are, the values allowed).

    ``fields`` are the top-level field names of the Struct decoded: a ``__post_init__`` message
    starting with one of them (``"amount_fen: …"``) is taken to be about that field.
    """
    path, problem = in_words(kind, str(exc))
    prefixed = _PREFIXED.match(problem)
    if not path and prefixed and prefixed.group("name") in fields:
        path, problem = prefixed.group("name"), problem[prefixed.end():]
    return f"{prefix}.{dotted(path)}".strip(".") or "body", problem


def parse_body(raw: bytes) -> ParsedBody:
    """Decode the request body; 400 naming the field when it is not ``{"type": …, "params": {…}}``."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        if str(exc).startswith(_OUT_OF_RANGE) and (huge := _out_of_range(raw)) is not None:
            path, text = huge
            raise BadRequest(
                f"{path}: the number {_cut(text)} is too large to read (a number must lie within "
                "about ±1.8e308 and have at most 4300 digits)",
                code="body.invalid", field=path,
            ) from None
        raise BadRequest(not_json(str(exc), raw), code="body.malformed", field="body") from None
    except UnicodeDecodeError:  # msgspec raises it for a string that is not UTF-8
        raise BadRequest(not_json(NOT_UTF8), code="body.malformed", field="body") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply", code="body.malformed", field="body") from None
    twice = named_twice(raw)
    if twice is not None:
        raise BadRequest(named_twice_in_words(twice), code="body.invalid", field=twice)
    try:
        body = msgspec.convert(data, TransactionBody)
    except msgspec.ValidationError as exc:
        field, problem = _worded(exc, TransactionBody, "")
        raise BadRequest(f"{field}: {problem}", code="body.invalid", field=field) from None
    canonical = msgspec.json.encode({"type": body.type, "params": body.params}, order="sorted")
    return ParsedBody(body=body, request_hash=hashlib.sha256(canonical).hexdigest())


_OUT_OF_RANGE = ("Number out of range", "Integer value out of range")
"""msgspec's refusals of a number no float or integer it reads can hold, naming no field (``$[...]``)."""


class _Huge(str):
    """A number of the body, as sent, that msgspec cannot read (an infinite float, a huge integer)."""


def _float_or_huge(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _Huge(text)


def _int_or_huge(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # past the interpreter's limit on digits converted
        return _Huge(text)


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _out_of_range(raw: bytes) -> tuple[str, str] | None:
    """The path (``params.amount_fen``) and text of the first number of the body ``raw`` (breadth first)
    that msgspec refused as out of range, read again with the standard library, which keeps the text."""
    try:
        decoded = json.loads(raw, parse_float=_float_or_huge, parse_int=_int_or_huge)
    except (ValueError, RecursionError):  # pragma: no cover - msgspec read it but for the number
        return None
    return _first(decoded, lambda value: isinstance(value, _Huge))


def _first(decoded: Any, found: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """The path and value of the first value of ``decoded`` (breadth first) that is ``found``."""
    level: list[tuple[str, Any]] = [("", decoded)]
    while level:
        deeper: list[tuple[str, Any]] = []
        for path, value in level:
            if found(value):
                return path.lstrip("."), value
            if isinstance(value, dict):
                deeper.extend((f"{path}.{k}", v) for k, v in value.items())
            elif isinstance(value, list):
                deeper.extend((f"{path}.{i}", v) for i, v in enumerate(value))
        level = deeper
    return None


class _Repeats(dict[str, Any]):
    """An object of the body that names ``key`` more than once (the last value kept, as msgspec does)."""

    key = ""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    marked = _Repeats(out)
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


def named_twice(raw: bytes) -> str | None:
    """The path (``params.amount_fen``) of a member that an object of the JSON body ``raw`` names twice,
    if any: msgspec keeps the last value, other readers the first, so a proxy or a log would disagree
    with the journal about the amount. The standard library's decoder reports every member of each
    object; such an object is marked as it is built, and the first marked one (breadth first) named by
    its own path."""
    try:
        decoded = json.loads(raw, object_pairs_hook=_once_each)
    except RecursionError:
        raise BadRequest("the body is nested too deeply", code="body.malformed", field="body") from None
    marked = _first(decoded, lambda value: isinstance(value, _Repeats))
    return None if marked is None else f"{marked[0]}.{marked[1].key}".lstrip(".")


def named_twice_in_words(path: str) -> str:
    """What a client whose body names the member at ``path`` twice is told (any JSON route)."""
    return (
        f"the body names {path.rpartition('.')[2]!r} twice in one object; JSON readers disagree on which "
        "value counts, so name each member once"
    )


def decode_params(tx_type: TransactionType, params: dict[str, Any], *, plugin_id: str = "") -> Any:
    """``params`` decoded with the type's Struct; 422 naming ``params.<field>`` when they fail it.

    The Struct's ``__post_init__`` may refuse with ``ValueError("<field>: why")`` or with
    ``TransactionRefused`` (its code, message and field are kept); any other exception there (even a
    ``SystemExit`` or a ``KeyboardInterrupt``: it runs in a plugin thread, which no signal reaches) is a
    fault in the plugin (502), never blamed on the client.
    """
    try:
        return msgspec.convert(params, tx_type.params)
    except msgspec.ValidationError as exc:
        fields = frozenset(f.encode_name for f in msgspec.structs.fields(tx_type.params))
        field, problem = _worded(exc, tx_type.params, "params", fields)
        raise Unprocessable(
            f"invalid parameters for {tx_type.key}: {field}: {problem}",
            code="transaction.invalid_params",
            field=field,
        ) from None
    except TransactionRefused as exc:
        raise refusal(exc, plugin_id=plugin_id) from None
    except BaseException as exc:  # SystemExit or its own BaseException too: the plugin's fault, never a 500
        raise PluginFaultError(
            f"plugin {plugin_id!r} failed while checking the parameters of {tx_type.key}: "
            f"{type(exc).__name__}",
            plugin=plugin_id,
        ) from None


def checked_refusal(exc: TransactionRefused) -> tuple[TransactionResult, LocalizedText, str | None]:
    """The refusal as the host answers (and journals) it: the failed result it stands for, its message
    and its field, checked like a result. ``ResultError`` when they are not valid (text that cannot be
    sent, a code or message past the result bounds, a field that is not a short printable name): the
    plugin's fault, never a 500.

    Reading the refusal runs the plugin's code (a raised subclass may make ``code``, ``message`` or
    ``field`` a property): whatever that raises is a ``ResultError`` too, and ``field`` must be plain text
    (``str`` itself), else a subclass's own methods would answer the checks below."""
    try:
        code, message, field = exc.code, exc.message, exc.field
    except BaseException as err:  # even a SystemExit from its property: only an invalid refusal
        raise ResultError(f"the refusal could not be read: {type(err).__name__}") from None
    result = check_transaction_result(TransactionResult(status="failed", code=code, message=message))
    if field is not None and not (type(field) is str and 0 < len(field) <= 128 and field.isprintable()):
        # Printed only when plain text: a plugin's own object's __repr__ is its code, and may raise anything.
        shown = f"{field!r:.100}" if type(field) is str else "(not text)"
        raise ResultError(f"the refusal's field {shown} is not a parameter name")
    if result.message is None:
        raise ResultError("the refusal has no message")
    return result, result.message, field


def refusal(exc: TransactionRefused, *, plugin_id: str = "") -> CoreError:
    """A plugin's refusal before journaling, as a 422 with its code, field and localized message; a
    refusal that is not a valid one is the plugin's fault (502)."""
    try:
        result, message, field = checked_refusal(exc)
    except ResultError as err:
        return PluginFaultError(f"plugin {plugin_id!r} refused invalidly: {err}", plugin=plugin_id)
    return Unprocessable(
        message.zh_CN, code=result.code, field=f"params.{field}" if field else "params",
        type_code=PLUGIN_REFUSAL, message=msgspec.to_builtins(message),
    )


def param_field(tx_type: TransactionType, name: str) -> str:
    """``params.<name>`` as the client sends the parameter: its JSON name when the type's params Struct
    renames its fields (``rename="camel"``: ``amount_fen`` travels as ``amountFen``)."""
    return f"params.{wire_name(tx_type.params, name)}"


def amount_of(tx_type: TransactionType, params: Any) -> int | None:
    """The amount in fen named by the type's ``amount_field``; ``None`` only for a type stating it moves
    no money. 422 when a type that moves money is sent no whole number of fen there."""
    try:
        return whole_fen(tx_type, params)
    except ValueError as exc:
        # An amount that is not whole fen would slip past the limits: refuse it (fail closed).
        raise Unprocessable(
            str(exc), code="limits.amount_not_fen", field=param_field(tx_type, tx_type.amount_field or "")
        ) from None


def check_amount(tx_type: TransactionType, amount_fen: int | None, max_fen: int) -> None:
    """422 ``limits.*`` when the amount is negative or above the platform's single-transaction limit."""
    if amount_fen is None or 0 <= amount_fen <= max_fen:
        return
    field = param_field(tx_type, tx_type.amount_field or "")
    if amount_fen < 0:
        raise Unprocessable("the amount must not be negative", code="limits.negative_amount", field=field)
    if amount_fen > max_fen:
        raise Unprocessable(
            f"the amount {amount_fen} fen is above the single-transaction limit of {max_fen} fen",
            code="limits.max_amount",
            field=field,
            limit_fen=max_fen,
        )


class _CustomerGate(Protocol):
    def allows(self, plugin: Any) -> bool: ...


def check_enabled_for_customer(contexts: _CustomerGate, plugin: Any, type_key: str) -> None:
    """403 when the customer's branch configuration does not run the plugin owning ``type_key``.

    Branch switch, rollout and version range apply to transactions exactly as to the home page, so a
    customer cannot reach a plugin their branch has not given them by posting its type directly.
    """
    if not contexts.allows(plugin):
        raise Forbidden(
            f"transaction type {type_key!r} is not available to this customer: its plugin "
            f"{plugin.id!r} is not enabled for the customer's branch",
            code="transaction.plugin_not_enabled",
            field="type",
        )


def check_suitability(risk: RiskLevel, profile: RiskProfile | None, today: date) -> None:
    """Refuse (422 ``suitability.*``) a product above the customer's tolerance, or any product above R1
    when the customer's assessment is missing or expired. Every product has a level (the host registers
    no type without one)."""
    problem = suitability_problem(risk, profile, today)
    if problem is not None:
        code, message, details = problem
        extra: dict[str, Any] = {"message": msgspec.to_builtins(message), **details}
        raise Unprocessable(message.zh_CN, code=code, **extra)
