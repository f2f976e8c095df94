"""``/metrics`` counts the app's HTTP requests by route template, method and status, with their latency:
refusals by authentication and the rate limit included, paths no route matches as one ``unmatched``
route, scrapes and health probes left out."""

from __future__ import annotations

from typing import Any

from fulcrum_core.observability.metrics import REQUEST_BUCKETS, Metrics
from fulcrum_core.settings import RateLimit, Settings
from fulcrum_sdk.data import StaticDataProvider
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "fulcrum_http_requests_total"
SECONDS = "fulcrum_http_request_seconds"
HOME = frozenset({("route", "/v1/home"), ("method", "GET")})

_Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> _Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _scrape(app: Any) -> _Samples:
    staff = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    response = app.get("/metrics", token=staff)
    assert response.status_code == 200
    return _samples(response.text)


def _requests(samples: _Samples) -> dict[tuple[str, str, str], float]:
    """``fulcrum_http_requests_total`` as (route, method, status) → count."""
    found = {}
    for (name, labels), value in samples.items():
        if name == REQUESTS:
            by = dict(labels)
            found[(by["route"], by["method"], by["status"])] = value
    return found


def test_requests_are_counted_by_route_template_method_and_status(make_app: Any) -> None:
    """Pages, a 401, a 403, the rate limit's 429 and a 404 are counted under their route's template; a path no
    route matches is ``unmatched``, whatever its path; scrapes and health probes are not counted."""
    app = make_app(rate_limit=RateLimit(requests=2, window_seconds=60))
    token = app.token()
    assert [app.get("/v1/home", token=token).status_code for _ in range(3)] == [200, 200, 429]
    assert app.client.get("/v1/home").status_code == 401
    assert app.get("/v1/home", token=app.token("synthetic-retiree", scopes=[])).status_code == 403
    assert app.get("/v1/pages/nobody/some/deep/path", token=app.token("synthetic-retiree")).status_code == 404
    assert app.client.get("/no/such/thing").status_code == 404
    assert app.client.get("/nor/this/one").status_code == 404
    assert app.client.get("/healthz").status_code == 200
    assert app.client.get("/readyz").status_code == 200
    _scrape(app)
    assert _requests(_scrape(app)) == {
        ("/v1/home", "GET", "200"): 2,
        ("/v1/home", "GET", "429"): 1,
        ("/v1/home", "GET", "401"): 1,
        ("/v1/home", "GET", "403"): 1,
        ("/v1/pages/{plugin}/{path}", "GET", "404"): 1,
        ("unmatched", "GET", "404"): 2,
    }


def test_request_latency_is_a_histogram_per_route_and_method(make_app: Any) -> None:
    """Every request of a route falls in one bucket of its histogram, whatever its status, and the sum
    is their time."""
    app = make_app(rate_limit=RateLimit(requests=2, window_seconds=60))
    token = app.token()
    for _ in range(3):
        app.get("/v1/home", token=token)
    samples = _scrape(app)
    assert samples[(f"{SECONDS}_count", HOME)] == 3
    assert samples[(f"{SECONDS}_bucket", HOME | {("le", "+Inf")})] == 3
    bounds = [samples[(f"{SECONDS}_bucket", HOME | {("le", repr(b))})] for b in REQUEST_BUCKETS]
    assert bounds == sorted(bounds)
    assert 0 < samples[(f"{SECONDS}_sum", HOME)] < 10


def test_a_head_request_is_counted_as_head_under_its_route(make_app: Any) -> None:
    """HEAD, answered as the GET of the same URL, keeps its own method and the GET route's template."""
    app = make_app()
    assert app.client.head("/v1/home", headers={"Authorization": f"Bearer {app.token()}"}).status_code == 200
    assert app.client.head("/healthz").status_code == 200
    assert _requests(_scrape(app)) == {("/v1/home", "HEAD", "200"): 1}


def test_a_method_no_route_knows_is_one_label_value(make_app: Any) -> None:
    """A client's own method name is ``other``, so clients cannot add label values at will."""
    app = make_app()
    assert app.client.request("BREW", "/v1/home").status_code == 405
    assert app.client.request("PROPFIND", "/anywhere").status_code in {404, 405}
    counts = _requests(_scrape(app))
    assert {(route, method) for route, method, _ in counts} == {("unmatched", "other")}
    assert sum(counts.values()) == 2


class _FailingProvider(StaticDataProvider):
    """A provider whose customer profile read raises: the host's own failure, a 500."""

    def profile(self, customer_id: str) -> Any:
        raise RuntimeError("the core banking system is gone")


def test_a_handler_error_is_counted_as_500(make_app: Any) -> None:
    """An exception the handler does not expect answers 500, and is counted as one."""
    app = make_app(provider_=_FailingProvider({}))
    assert app.get("/v1/home").status_code == 500
    samples = _scrape(app)
    assert _requests(samples) == {("/v1/home", "GET", "500"): 1}
    assert samples[(f"{SECONDS}_count", HOME)] == 1


def test_observe_request_buckets_by_upper_bound() -> None:
    """A request lasting exactly a bucket's bound falls in that bucket (Prometheus's ``le``)."""
    metrics = Metrics()
    metrics.observe_request("/v1/home", "GET", 200, 0.4)
    metrics.observe_request("/v1/home", "GET", 200, 0.41)
    samples = _samples(metrics.render().decode())
    assert samples[(f"{SECONDS}_bucket", HOME | {("le", "0.4")})] == 1
    assert samples[(f"{SECONDS}_bucket", HOME | {("le", "0.5")})] == 2
    assert samples[(REQUESTS, HOME | {("status", "200")})] == 2


def test_the_buckets_have_edges_at_the_home_budget_and_the_transaction_deadline() -> None:
    """A home page p99 near its budget, and requests near the transaction deadline, are read at a bucket
    edge instead of between two far apart."""
    defaults = Settings()
    assert defaults.home_budget_ms / 1000 in REQUEST_BUCKETS
    assert defaults.deadlines.execute_transaction / 1000 in REQUEST_BUCKETS
