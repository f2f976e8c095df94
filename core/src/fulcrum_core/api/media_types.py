"""What a request body must be declared as: JSON bodies in ``application/json`` (or an
``application/*+json`` type) with no content coding, form bodies in UTF-8, and no ``Content-Type``
sent twice.

JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1), and so is an OAuth form (RFC 6749
appendix B). A ``charset`` naming another encoding (``latin-1``) was ignored and the body read as
UTF-8 anyway: a client's ``é`` in Latin-1 became a refusal for bytes that are not UTF-8, or text it
never meant. Such a body is refused with words naming the charset, before anything reads it, unless it
is ASCII (:func:`ascii_form`, :func:`ascii_json`) and the charset one of :data:`_ASCII_SUPERSETS`: its
bytes then mean the same in UTF-8, so forms and JSON bodies alike are read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fulcrum_core.errors import BadRequest, UnsupportedMediaType
from fulcrum_core.parameter_problems import echoed

__all__ = ["ascii_form", "ascii_json", "charset_problem", "is_json", "json_body_refusal", "media_type"]

_UTF8 = frozenset({"utf-8", "utf8"})  # the WHATWG labels of UTF-8 a client sends in practice
_ASCII_SUPERSETS = frozenset({
    "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1", "latin1", "windows-1252", "cp1252",
})
"""Charsets in which ASCII bytes mean what they mean in UTF-8 (Apache HttpClient 4's form entity
declares ISO-8859-1 by default)."""
_HIGH_ESCAPE = re.compile(rb"%[89a-fA-F][0-9a-fA-F]")


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower case, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether ``content_type`` declares JSON: ``application/json`` or a ``+json`` type."""
    media = media_type(content_type)
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _header(scope: Any, name: bytes) -> list[str]:
    """Every value of header ``name`` (lower case) as sent (litestar's headers join repeated ones)."""
    return [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name]


def ascii_form(body: bytes) -> bool:
    """Whether the form ``body`` is ASCII in its bytes and its escapes (no ``%80``-``%FF``): it then
    reads the same in UTF-8 as in any of :data:`_ASCII_SUPERSETS`."""
    return body.isascii() and _HIGH_ESCAPE.search(body) is None


def ascii_json(body: bytes) -> bool:
    """Whether the JSON ``body`` is ASCII in its bytes: a ``\\u00e9`` escape names a code point, not a
    byte, so it reads the same in UTF-8 as in any of :data:`_ASCII_SUPERSETS`."""
    return body.isascii()


def charset_problem(content_type: str, *, ascii_body: bool = False) -> str | None:
    """Why the body's ``charset`` cannot be read (None when it names UTF-8, or no charset is sent):
    every ``charset`` parameter is judged, so ``charset=utf-8; charset=latin-1`` is refused too.
    ``ascii_body``: the body reads the same in an ASCII-compatible charset, which is then read too."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset":
            continue
        charset = value.strip().strip('"').strip()
        if charset.lower() not in _UTF8 and not (ascii_body and charset.lower() in _ASCII_SUPERSETS):
            return (
                f"the body is declared in charset {echoed(charset, 40)}, which is not read: send it in "
                "UTF-8, with charset=utf-8 or no charset"
            )
    return None


def json_body_refusal(scope: Any, body: bytes) -> BadRequest | UnsupportedMediaType | None:
    """The refusal for the ``body`` of a JSON route's request ``scope`` (an ASGI scope): 400 when its
    ``Content-Type`` is sent more than once, 415 when it is not JSON, not UTF-8 (an ASCII body may be
    declared in an ASCII-compatible charset), or has a content coding (``gzip``) the host does not undo;
    None when fine."""
    sent = [coding.strip() for value in _header(scope, b"content-encoding") for coding in value.split(",")]
    codings = [coding for coding in sent if coding]
    if any(coding.lower() != "identity" for coding in codings):
        # Read as it came: a body declared compressed was refused as "not valid JSON", and one that was
        # not compressed after all was carried out (RFC 9110 section 8.4.1 allows this 415).
        shown = ", ".join(echoed(c, 20) for c in codings if c.lower() != "identity")
        return UnsupportedMediaType(
            f"the body is declared with the content coding {shown}, which the host does not undo: send "
            "it uncompressed, without Content-Encoding",
            field="Content-Encoding",
        )
    return _declared_json(_header(scope, b"content-type"), body)


def _declared_json(content_types: Sequence[str], body: bytes) -> BadRequest | UnsupportedMediaType | None:
    """The refusal for ``body`` declared by the ``Content-Type`` headers ``content_types`` (every one
    sent), or None when it is one JSON type in UTF-8 (or, for an ASCII body, an ASCII superset)."""
    # Sent twice, or as a list (how a proxy joins two): one reader may take one, another the other.
    times = sum(1 + media_type(value).count(",") for value in content_types)
    if times > 1:
        return BadRequest(
            f"the Content-Type header is sent {times} times; send it once",
            code="invalid-input", field="Content-Type",
        )
    content_type = content_types[0] if content_types else ""
    if not is_json(content_type):
        media = media_type(content_type)
        sent = (media if len(media) <= 60 else echoed(media, 60)) if media else "no Content-Type"
        return UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {sent}",
            field="Content-Type",
        )
    problem = charset_problem(content_type, ascii_body=ascii_json(body))
    if problem is not None:
        return UnsupportedMediaType(f"{problem} (JSON is UTF-8, RFC 8259 section 8.1)", field="Content-Type")
    return None
