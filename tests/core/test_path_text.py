"""A path that is not UTF-8 once percent-decoded is a 400 saying so, with no replacement character."""

from __future__ import annotations

from typing import Any

import pytest

_STAFF = ("registry:review",)


@pytest.mark.parametrize(
    ("method", "path", "field", "byte"),
    [
        ("GET", "/registry/v1/plugins/%ff", "path", "0xff"),  # no route
        ("GET", "/nowhere/%c3%28", "path", "0xc3"),
        ("GET", "/registry/v1/publishers/%ff", "publisher_id", "0xff"),
        ("POST", "/registry/v1/publishers/%fe/suspend", "publisher_id", "0xfe"),
        ("GET", "/registry/v1/releases/%ff", "release_id", "0xff"),
        ("GET", "/registry/simple/%ff/", "project", "0xff"),
        ("GET", "/registry/files/%ff/x.whl", "sha256", "0xff"),
        ("GET", "/v1/transactions/ab%e5%85", "tx_id", "0xe5"),  # a character cut in half
        ("GET", "/v1/feeds/%ff", "column", "0xff"),
        ("GET", "/v1/pages/wealth-checkup/%ff", "path", "0xff"),
        ("DELETE", "/v1/consents/%ff", "consent_id", "0xff"),
        ("GET", "/v1/consents/%ff", "path", "0xff"),  # the route takes DELETE alone: 405 before
        ("GET", "/problems/%ff", "code", "0xff"),
    ],
)
def test_a_path_that_is_no_text_is_a_400_naming_it_without_a_replacement_character(
    make_app: Any, method: str, path: str, field: str, byte: str
) -> None:
    """``/registry/v1/publishers/%ff`` was "no publisher '\\ufffd'", and an unknown route's 404 quoted
    the path with one: the server decodes the path with replacement characters, so the client's byte
    was lost and a character it never sent shown. Now a 400 names the path parameter (or the path) and
    the byte, before any handler reads it."""
    app = make_app()
    token = app.token("ops", _STAFF, kind="staff") if "registry" in path else app.token()
    response = app.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text
    assert "\ufffd" not in response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("bad-request", field), problem
    assert "is not UTF-8 text once percent-decoded" in problem["detail"], problem["detail"]
    assert f"byte {byte}" in problem["detail"], problem["detail"]


def test_a_replacement_character_sent_as_utf8_is_text(make_app: Any) -> None:
    """``%EF%BF%BD`` is U+FFFD in UTF-8: text like any other, read and echoed as it was."""
    app = make_app()
    response = app.get("/v1/transactions/%EF%BF%BD")
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "tx_id"
