"""Every ``text/`` response names each media-type parameter once (RFC 9110 section 8.3.1)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.core.oauth.conftest import REDIRECT, pkce_pair


def _parameters(content_type: str) -> list[str]:
    return [part.split("=", 1)[0].strip().lower() for part in content_type.split(";")[1:]]


def _once_each(content_type: str) -> None:
    repeated = [name for name, n in Counter(_parameters(content_type)).items() if n > 1]
    assert not repeated, f"{content_type!r} repeats {repeated}"
    assert "charset" in _parameters(content_type), content_type


def test_metrics_problem_pages_the_consent_page_and_the_index_say_their_charset_once(
    make_app: Any,
) -> None:
    """litestar adds ``charset=utf-8`` to every ``text/`` type, and these routes said it too:
    ``text/plain; version=0.0.4; charset=utf-8; charset=utf-8`` on ``/metrics``, which a strict parser
    (Go's ``mime.ParseMediaType``, Prometheus's) refuses."""
    app = make_app(oauth_dev_login=True)
    staff = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    metrics = app.get("/metrics", token=staff)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    _once_each(metrics.headers["content-type"])
    html = {"accept": "text/html"}
    reviewer = app.runtime.tokens.issue("rita", ["registry:review"], kind="staff")
    for path, token in (("/problems", None), ("/problems/not-found", None), ("/registry/simple/", reviewer)):
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        page = app.client.get(path, headers={**html, **auth})
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-type"].startswith("text/html"), path
        _once_each(page.headers["content-type"])
    consent = app.client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT, "scope": "home:read",
        "state": "s", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256",
    })
    assert consent.status_code == 200, consent.text
    _once_each(consent.headers["content-type"])
