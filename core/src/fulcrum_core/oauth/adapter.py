"""The litestar side of authlib: requests in, responses out, with no framework object crossing over.

Handlers read the request (an ``await``) into an immutable :class:`RequestSnapshot`, hand it to the
synchronous authlib server in a worker thread, and turn the :class:`OAuthResponse` it returns into a
litestar ``Response``. authlib never touches litestar, and the event loop never runs authlib.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_to_bytes

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from litestar import Request, Response

from fulcrum_core.api.media_types import ascii_form, charset_problem
from fulcrum_core.api.query_text import query_problem
from fulcrum_core.oauth.refusals import described

__all__ = [
    "MAX_BODY",
    "Headers",
    "OAuthResponse",
    "RequestSnapshot",
    "SnapshotRequest",
    "back_channel_refusal",
    "garbled_words",
    "snapshot",
    "to_litestar",
]

_FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024
"""The largest body an OAuth endpoint reads (a form of a few parameters; litestar answers 413 past it)."""


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (authlib asks for ``Authorization``)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RequestSnapshot:
    """What authlib needs of an HTTP request: method, URL, headers and the decoded parameters."""

    method: str
    url: str
    headers: Headers
    query: tuple[tuple[str, str], ...]
    form: tuple[tuple[str, str], ...]
    content_type: str = ""
    """The body's media type, lower case, without parameters (``""`` when none was sent)."""
    authorization_headers: int = 0
    """How many ``Authorization`` headers were sent: ``headers`` keeps the last of them."""
    charset_refused: str | None = None
    """Why the form's declared ``charset`` cannot be read (another than UTF-8); its form is then not read."""
    garbled: str | None = None
    """The form parameter whose name or value is not UTF-8 once percent-decoded (``""`` for a name that
    is not); its form is then empty."""
    query_refused: tuple[str | None, str] | None = None
    """The first query parameter whose name or value is no text (a malformed percent-escape, bytes that
    are not UTF-8), by name (None when the name is at fault), and what is wrong in words; ``query``
    leaves out every such parameter."""


_AUTH: Final = b"authorization"


async def snapshot(request: Request[Any, Any, Any], *, base_url: str | None = None) -> RequestSnapshot:
    """Read ``request`` once; form bodies are parsed keeping repeated keys (see :func:`back_channel_refusal`).

    ``base_url`` (the issuer) replaces the scheme and host the request arrived with: behind a
    TLS-terminating proxy the server sees ``http``, while authlib rightly insists on ``https``.
    """
    body = b""
    if request.method == "POST":
        body = await request.body()
    form: list[tuple[str, str]] = []
    garbled: str | None = None
    declared = request.headers.get("content-type", "")
    content_type = declared.split(";", 1)[0].strip().lower()
    # A form of ASCII alone reads the same in ISO-8859-1, which common clients declare by default.
    refused = charset_problem(declared, ascii_body=ascii_form(body)) if content_type == _FORM else None
    if body and content_type == _FORM and refused is None and len(body) <= MAX_BODY:
        text = body.decode("utf-8", "surrogateescape")
        form = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
        # Read with replacement characters, ``client_id=%FF`` was refused as "client '?'".
        garbled = next((key for key, value in form if not _is_text(key) or not _is_text(value)), None)
        if garbled is not None:
            form = []
    query, query_refused = _read_query(request.scope.get("query_string", b""))
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    url = str(request.url)
    if base_url is not None:
        url = base_url.rstrip("/") + request.url.path + (f"?{raw_query}" if raw_query else "")
    return RequestSnapshot(
        method=request.method,
        url=url,
        headers=Headers(request.headers.items()),
        query=tuple(query),
        form=tuple(form),
        content_type=content_type,
        authorization_headers=sum(1 for name, _ in request.scope["headers"] if name.lower() == _AUTH),
        charset_refused=refused,
        garbled=None if garbled is None else garbled if _is_text(garbled) else "",
        query_refused=query_refused,
    )


def _read_query(raw: bytes) -> tuple[list[tuple[str, str]], tuple[str | None, str] | None]:
    """The parameters of the query ``raw`` that are text, and the first that is not (see
    :attr:`RequestSnapshot.query_refused`). Read leniently, ``state=%ff`` was the state ``'\ufffd'``
    and ``scope=100%zz`` the scope ``'100%zz'``: values the client never sent."""
    query: list[tuple[str, str]] = []
    refused: tuple[str | None, str] | None = None
    for part in raw.split(b"&"):
        if not part:
            continue
        problem = query_problem(part)
        if problem is not None:
            refused = refused or problem
            continue
        name, _, value = part.partition(b"=")
        query.append((_unquoted(name), _unquoted(value)))
    return query, refused


def _unquoted(text: bytes) -> str:
    """A query's name or value as sent, ``+`` and percent-escapes decoded (it is known to be UTF-8)."""
    return unquote_to_bytes(text.replace(b"+", b" ")).decode("utf-8")


def garbled_words(name: str) -> str:
    """What is wrong with the form parameter ``name`` (``""``: a name) that is not UTF-8 text."""
    which = f"form parameter {name!r}" if name else "a form parameter's name"
    return f"{which} is not UTF-8 text once percent-decoded; percent-encode the UTF-8 bytes of the text"


def _is_text(value: str) -> bool:
    """Whether ``value`` decoded as UTF-8 without an escaped byte (``surrogateescape`` leaves one)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def back_channel_refusal(snap: RequestSnapshot) -> OAuthResponse | None:
    """``invalid_request`` for a token, revocation or introspection request that is not one form.

    RFC 6749 sends their parameters form-encoded in the body (section 3.2; client credentials "MUST
    NOT be included in the request URI", section 2.3.1), each at most once (sections 3.1 and 3.2).
    authlib reads the first of repeated values and, at these endpoints, the URL's parameters too: a
    revocation of ``token=junk&token=<the real one>`` answered 200 and left the real token live. The
    client's credentials are sent once too: of two Authorization headers authlib read the last.
    """
    if snap.authorization_headers > 1:  # no list (RFC 9110 section 11.6.2): a proxy may read another one
        return _invalid_request(
            f"the Authorization header is sent {snap.authorization_headers} times; send the client's "
            "credentials once (RFC 6749 section 2.3.1)"
        )
    if snap.query_refused is not None:
        return _invalid_request(
            f"{snap.query_refused[1]}; and parameters belong in a form-encoded body ({_FORM}), not the "
            "URL's query (RFC 6749 section 3.2)"
        )
    if snap.query:  # first: a request of URL parameters alone has no body, hence no content type
        names = ", ".join(sorted({key for key, _ in snap.query}))
        return _invalid_request(
            f"parameters belong in a form-encoded body ({_FORM}), not the URL's query (found: {names}; "
            "RFC 6749 section 3.2)"
        )
    if snap.content_type != _FORM:
        sent = snap.content_type or "no content type"
        return _invalid_request(f"the request body must be {_FORM}, not {sent} (RFC 6749 section 3.2)")
    if snap.charset_refused is not None:  # OAuth's own refusal (400), as for another media type
        return _invalid_request(f"{snap.charset_refused} (RFC 6749 appendix B)")
    if snap.garbled is not None:
        return _invalid_request(f"{garbled_words(snap.garbled)} (RFC 6749 appendix B)")
    seen: set[str] = set()
    for key, _value in snap.form:
        if key in seen:
            return _invalid_request(f"parameter {key!r} is sent more than once (RFC 6749 section 3.2)")
        seen.add(key)
    return None


def _invalid_request(description: str) -> OAuthResponse:
    """``invalid_request`` with ``description``, what a client sent in it quoted as a description may
    hold it: a parameter's name with an ``é`` or a ``"`` made authlib fail building the refusal (a 500)."""
    status, body, headers = InvalidRequestError(description=described(description))()
    return OAuthResponse(status=status, body=body, headers=list(headers))


class _Params(dict[str, str]):
    """A read-only view of the first value of each parameter (what authlib's ``.get`` expects)."""

    @classmethod
    def of(cls, pairs: tuple[tuple[str, str], ...]) -> _Params:
        params = cls()
        for key, value in pairs:
            params.setdefault(key, value)
        return params


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, snap: RequestSnapshot) -> None:
        # Like a web form's ``values``: query then body, the body winning on a clash.
        self._data = {**_Params.of(snap.query), **_Params.of(snap.form)}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in (*snap.query, *snap.form):
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SnapshotRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's ``OAuth2Request`` over a :class:`RequestSnapshot`."""

    def __init__(self, snap: RequestSnapshot) -> None:
        super().__init__(method=snap.method, uri=snap.url, headers=snap.headers)
        self.snapshot = snap
        self.payload = _Payload(snap)
        self._args = _Params.of(snap.query)
        self._form = _Params.of(snap.form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class OAuthResponse:
    """authlib's ``(status, body, headers)``; ``location`` is what the RFC 9207 extension rewrites."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        for key, value in self.headers:
            if key.lower() == "location":
                return value
        return None

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


def to_litestar(response: OAuthResponse) -> Response[bytes]:
    """The litestar response for an authlib answer; JSON bodies stay byte-for-byte what authlib built."""
    headers = dict(response.headers)
    body = response.body
    if isinstance(body, dict):
        content = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = body or b""
    media_type = headers.pop("Content-Type", None) or headers.pop("content-type", None) or "text/plain"
    return Response(content=content, status_code=response.status, headers=headers, media_type=media_type)
