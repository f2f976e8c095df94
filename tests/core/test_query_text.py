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


_STAFF = ("registry:review",)


@pytest.mark.parametrize(
    ("path", "query", "field", "staff"),
    [
        ("/v1/search", "q=fund&q=pension", "q", False),
        ("/v1/search", "q=fund&page=1&page=2", "page", False),
        ("/v1/feeds/wealth", "limit=5&limit=50", "limit", False),
        ("/registry/v1/releases", "state=approved&state=retired", "state", True),
        ("/registry/v1/plugins", "scope=home:read&scope=search:read", "scope", True),
        ("/registry/v1/audit", "limit=1&limit=2", "limit", True),
    ],
)
def test_a_parameter_sent_twice_is_a_400_naming_it(
    make_app: Any, path: str, query: str, field: str, staff: bool
) -> None:
    """Each of these takes one value: ``?state=approved&state=retired`` read the last alone and listed
    the retired releases (none: an empty page that looked like an answer to both); now a 400 naming it."""
    app = make_app()
    token = app.token("ops", _STAFF, kind="staff") if staff else app.token()
    response = app.client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == field
    assert f"'{field}' is sent 2 times; send it once" in problem["detail"]


def test_registry_query_bytes_that_are_no_text_are_a_400(make_app: Any) -> None:
    """The registry's listings read their query as the app's routes do: ``?q=%ff`` named, not searched."""
    app = make_app()
    token = app.token("ops", _STAFF, kind="staff")
    sent = (("/registry/v1/plugins?q=%ff", "q"), ("/registry/v1/audit?subject=%c3%28", "subject"))
    for path, field in sent:
        response = app.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field


def test_a_repeated_parameter_the_route_does_not_take_is_left_alone(make_app: Any) -> None:
    """Only the route's own parameters are counted: one it does not take is ignored, repeated or not (a
    page's deep-link query, the plugin's to read, keeps the last of a repeated one)."""
    app = make_app()
    response = app.client.get(
        "/v1/search?q=a&utm=1&utm=2", headers={"Authorization": f"Bearer {app.token()}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/search", "q=fund&page=1e0", "page"),
        ("/v1/search", "q=fund&page=1.0", "page"),
        ("/v1/search", "q=fund&page_size=%D9%A5", "page_size"),
        ("/v1/search", "q=fund&page=%2B1", "page"),
        ("/v1/feeds/wealth", "limit=2e1", "limit"),
        ("/v1/feeds/wealth", "limit=20.0", "limit"),
        ("/v1/feeds/wealth", "limit=2_0", "limit"),
    ],
)
def test_an_integer_parameter_in_another_spelling_is_a_400_naming_it(
    make_app: Any, path: str, query: str, field: str
) -> None:
    """``?page=1e0`` and ``?limit=20.0`` were read as integers: an integer is sent in ASCII digits,
    anything else is the 400 of an integer out of range, naming the parameter."""
    app = make_app()
    response = app.client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {app.token()}"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid-input", field)
    assert "is not an integer from 1 to" in problem["detail"], problem["detail"]


def test_integer_parameters_in_digits_are_read(make_app: Any) -> None:
    """Plain digits pass: page 2 of the search, 5 cards of a feed."""
    app = make_app()
    token = {"Authorization": f"Bearer {app.token()}"}
    assert app.client.get("/v1/search?q=fund&page=2&page_size=5", headers=token).json()["page"] == 2
    assert app.client.get("/v1/feeds/wealth?limit=5", headers=token).status_code == 200


def test_every_route_reads_its_integer_parameters_through_checked_query(make_app: Any) -> None:
    """A route taking an integer from its path or query runs ``checked_query``, which alone refuses
    ``1e1`` and ``1_0``; and no path declares ``:int`` (converted by ``int()``, hidden from the hook)."""
    from fulcrum_core.api.query_text import _integers, checked_query

    app = make_app()
    for route in app.client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            assert ":int}" not in str(handler.paths), route.path
            if _integers(handler):
                assert handler.resolve_before_request() is checked_query, (route.path, handler)


@pytest.mark.parametrize(
    ("path", "query", "field", "shown"),
    [
        ("/v1/search", "q=%zz", "q", "'%zz'"),
        ("/v1/search", "q=100%", "q", "'%'"),
        ("/v1/search", "q=fund&page=%2", "page", "'%2'"),
        ("/v1/feeds/wealth", "cursor=a%g1", "cursor", "'%g1'"),
        ("/v1/pages/wealth-checkup/report", "tab=%%41", "tab", "'%%4'"),
        ("/v1/search", "q=x&%zz=1", "query", "'%zz'"),
    ],
)
def test_a_malformed_percent_escape_is_a_400_naming_the_parameter(
    make_app: Any, path: str, query: str, field: str, shown: str
) -> None:
    """``?q=%zz`` was searched for as the three characters ``%zz``, while ``?q=100%ab`` read ``%ab`` as a
    byte: a ``%`` not followed by two hex digits is no URI (RFC 3986 section 2.1), and what the client
    meant is anyone's guess, so it is a 400 naming the parameter and quoting the escape."""
    app = make_app()
    response = app.client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {app.token()}"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("bad-request", field), problem
    assert f"holds {shown}, which is no percent-escape" in problem["detail"], problem["detail"]
    assert "%25" in problem["detail"]


def test_registry_query_escapes_are_judged_alike(make_app: Any) -> None:
    """The registry's listings refuse a malformed escape as the app's routes do; a well-formed one
    (``%25``, a literal ``%``) is read."""
    app = make_app()
    token = {"Authorization": f"Bearer {app.token('ops', _STAFF, kind='staff')}"}
    response = app.client.get("/registry/v1/plugins?q=50%off", headers=token)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "q"
    assert app.client.get("/registry/v1/plugins?q=50%25off", headers=token).status_code == 200
