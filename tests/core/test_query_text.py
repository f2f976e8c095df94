"""Query parameters are UTF-8 text once percent-decoded, or a 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/search", b"q=%ff%fe", "q"),
        ("/v1/search", b"q=%e5%85", "q"),  # a character cut in half
        ("/v1/feeds/wealth", b"cursor=%c3%28", "cursor"),
        ("/v1/pages/wealth-checkup/report", b"tab=ok&from=%80", "from"),
        ("/v1/search", b"%ff=1&q=x", "query"),
    ],
)
def test_bytes_that_are_no_text_are_a_400_naming_the_parameter(
    make_app: Any, path: str, query: bytes, field: str
) -> None:
    """``?q=%ff%fe`` reached the search as two replacement characters and was searched for; now it is a
    400 naming ``q``, before any plugin is asked."""
    app = make_app()
    response = app.client.get(path + "?" + query.decode(), headers={"Authorization": f"Bearer {app.token()}"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == field
    assert "not UTF-8 text once percent-decoded" in problem["detail"]


def test_text_in_any_script_is_read(make_app: Any) -> None:
    """Percent-encoded UTF-8 (养老), a plus for a space and raw ASCII pass untouched."""
    app = make_app()
    token = {"Authorization": f"Bearer {app.token()}"}
    for query in ("q=%E5%85%BB%E8%80%81", "q=fund+a", "q=plain"):
        assert app.client.get("/v1/search?" + query, headers=token).status_code == 200


def test_a_long_parameter_name_is_quoted_short(make_app: Any) -> None:
    """The parameter's name is quoted back at most 64 characters (its length said), not whole."""
    app = make_app()
    name = "n" * 5_000
    response = app.client.get(
        f"/v1/search?q=x&{name}=%ff", headers={"Authorization": f"Bearer {app.token()}"}
    )
    assert response.status_code == 400, response.text
    assert len(response.json()["detail"]) < 300
    assert "(5000 characters)" in response.json()["detail"]
