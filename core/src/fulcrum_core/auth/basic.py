"""An access token sent as HTTP Basic credentials, for clients that speak no Bearer (pip, uv).

Package indexes take API tokens as the password of the user ``__token__``
(``https://__token__:<token>@host/registry/simple/``, or the same from netrc or a keyring). Routes
whose ``opt`` holds ``TOKEN_AS_BASIC_OPT`` accept that besides ``Authorization: Bearer``; the token is
then verified exactly like a Bearer one. Their 401 challenges with both schemes (``challenge``) so
pip asks netrc, the keyring or the user for credentials.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from fulcrum_core.errors import Unauthorized
from fulcrum_core.parameter_problems import echoed

__all__ = ["BASIC_CHALLENGE", "TOKEN_AS_BASIC_OPT", "TOKEN_USER", "basic_token"]

TOKEN_AS_BASIC_OPT: Final = "token_as_basic"  # noqa: S105 - an opt key, not a secret
TOKEN_USER: Final = "__token__"  # noqa: S105 - the user name package indexes use, not a secret
BASIC_CHALLENGE: Final = 'Basic realm="fulcrum registry"'


def basic_token(authorization: str | None) -> str:
    """The access token in ``Authorization: Basic base64(__token__:<token>)``; ``""`` for another scheme.

    Basic credentials of any other user are refused (401 ``token.malformed``) naming the convention,
    rather than read as no credentials at all.
    """
    if not authorization:
        return ""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "the Basic credentials are not base64 of user:password", code="token.malformed"
        ) from None
    if not sep:  # the whole value read as the user: refusing it by name could name __token__ itself
        raise Unauthorized(
            f"the Basic credentials have no ':' between the user and the password: send "
            f"{TOKEN_USER}:<access token>",
            code="token.malformed",
        )
    if user != TOKEN_USER:
        raise Unauthorized(
            f"Basic credentials take the user {TOKEN_USER} and an access token as the password, "
            f"not the user {echoed(user)}",
            code="token.malformed",
        )
    return password.strip()
