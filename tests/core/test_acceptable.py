"""The JSON API's routes answer 406 naming ``Accept`` when it admits no JSON (RFC 9110 section 12.5.1)."""

from __future__ import annotations

from typing import Any

import pytest

_STAFF = ("registry:review",)

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
JAVA = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"  # HttpURLConnection's default


def _get(app: Any, path: str, accept: str | None, *, staff: bool = False) -> Any:
    token = app.token("ops", _STAFF, kind="staff") if staff else app.token()
    headers = {"Authorization": f"Bearer {token}"}
    if accept is not None:
        headers["Accept"] = accept
    return app.client.get(path, headers=headers)


@pytest.mark.parametrize(
    "accept",
    ["application/xml", "text/html", "text/csv, text/plain;q=0.5", "application/json;q=0",
     "application/json;q=0, application/problem+json;q=0, text/html", "application/vnd.api+json",
     "image/*"],
)
@pytest.mark.parametrize(("path", "staff"), [("/v1/consents", False), ("/registry/v1/releases", True)])
def test_an_accept_admitting_no_json_is_406_naming_it(
    make_app: Any, accept: str, path: str, staff: bool
) -> None:
    """``Accept: application/xml`` got JSON with a 200, as though the client had asked for it: the route
    answers JSON alone, so it says so with a 406 naming ``Accept`` and quoting it, before any work."""
    response = _get(make_app(), path, accept, staff=staff)
    assert response.status_code == 406, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("not-acceptable", "Accept"), problem
    assert repr(accept) in problem["detail"], problem["detail"]
    assert "application/json" in problem["detail"]


@pytest.mark.parametrize(
    "accept",
    [None, "", "*/*", "application/json", "application/*", "application/problem+json", BROWSER, JAVA,
     "application/json, text/plain, */*", "text/html;q=0.9, application/json;q=0.1",
     "APPLICATION/JSON; charset=utf-8", "application/json;q=0, */*", "text/html, */*;q=0.01",
     "nonsense", "application/json, application/*+json"],
)
@pytest.mark.parametrize(("path", "staff"), [("/v1/consents", False), ("/registry/v1/releases", True)])
def test_an_accept_admitting_json_or_a_wildcard_gets_json(
    make_app: Any, accept: str | None, path: str, staff: bool
) -> None:
    """What browsers and HTTP libraries send (``*/*`` among others), no ``Accept`` at all, and any that
    admits JSON or the problem type get the JSON page; one no media range can be read from is
    disregarded, as RFC 9110 allows."""
    response = _get(make_app(), path, accept, staff=staff)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")


def test_the_home_page_and_a_post_are_406_too(make_app: Any) -> None:
    """The hot path (``/v1/home``) and a body-taking route refuse alike, before the body is read."""
    app = make_app()
    assert _get(app, "/v1/home", "text/xml").status_code == 406
    staff = app.token("ops", _STAFF, kind="staff")
    response = app.client.post(
        "/registry/v1/publishers", content=b"<publisher/>",
        headers={"Authorization": f"Bearer {staff}", "Accept": "application/xml", "Content-Type": "text/xml"},
    )
    assert response.status_code == 406, response.text


PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


def test_the_package_index_and_the_catalogue_keep_their_own_negotiation(make_app: Any) -> None:
    """The package index (PEP 691: pip's ``Accept``, answered in HTML) and ``/problems`` (HTML or
    JSON) choose their answer themselves, as before."""
    app = make_app()
    html = app.client.get("/problems", headers={"Accept": "text/html"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    staff = app.token("ops", _STAFF, kind="staff")
    for accept in (PIP, "text/html", "application/xml"):
        headers = {"Authorization": f"Bearer {staff}", "Accept": accept}
        index = app.client.get("/registry/simple/", headers=headers)
        assert index.status_code == 200, index.text
        assert index.headers["content-type"].startswith("text/html"), accept


def test_an_unauthenticated_request_is_still_401(make_app: Any) -> None:
    """Without a token the answer is the 401 it was, whatever ``Accept`` says."""
    response = make_app().client.get("/v1/consents", headers={"Accept": "application/xml"})
    assert response.status_code == 401
