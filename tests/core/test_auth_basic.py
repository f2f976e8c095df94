"""``Authorization: Basic`` as installers send the registry index's token: ``__token__:<access token>``."""

from __future__ import annotations

import base64

import pytest
from fulcrum_core.auth.basic import basic_token
from fulcrum_core.errors import Unauthorized


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_the_token_is_the_password_of_user_token() -> None:
    assert basic_token(_basic("__token__:abc.def.ghi")) == "abc.def.ghi"


@pytest.mark.parametrize(
    ("credentials", "detail"),
    [
        # No colon: the whole value is the user, which read "take the user __token__ …, not the user
        # '__token__'", refusing the user it named as the right one.
        ("__token__", "the Basic credentials have no ':' between the user and the password: send "
         "__token__:<access token>"),
        ("eyJhbGciOi.e30.sig", "the Basic credentials have no ':' between the user and the password: send "
         "__token__:<access token>"),
        ("alice:abc", "Basic credentials take the user __token__ and an access token as the password, not "
         "the user 'alice'"),
    ],
)
def test_credentials_not_of_user_token_are_refused_in_words(credentials: str, detail: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        basic_token(_basic(credentials))
    assert (refused.value.code, refused.value.detail) == ("token.malformed", detail)
