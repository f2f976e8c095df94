"""Every problem the API can answer is documented, and every problem's ``type`` leads to its page.

The catalogue (``fulcrum_core.problem_types``) is checked against the source: the codes the host can
emit are read from its code (literal ``code=`` arguments, ``default_code`` attributes, the token
verifier's ``_fail``, the transaction outcomes, the registry's error codes, the SDK's suitability
codes), so a new code without an entry fails here, and so does an entry nothing emits. A code built
from a variable is allowed only at the reviewed places listed in ``VARIABLE_CODES``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from fulcrum_core.problem_types import CATALOGUE, PLUGIN_REFUSAL, ProblemType, by_code

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "fulcrum_core"
REGISTRY_ERRORS = ROOT / "registry" / "src" / "fulcrum_registry" / "errors.py"
SDK_VALIDATE = ROOT / "sdk" / "src" / "fulcrum_sdk" / "_validate.py"
# The catalogue and the routes serving it name every code without emitting any.
NOT_EMITTERS = {CORE / "problem_types.py", CORE / "api" / "problems.py"}

PROBLEM = "application/problem+json"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # a browser's

# Where a ``code=`` argument is not a literal, the code it passes on and where that is read instead.
VARIABLE_CODES = {
    ("api/admin.py", "branch_list", "c"),  # a branch code, not a problem
    ("api/registry_errors.py", "translate", "code"),  # registry.<fulcrum_registry error code>
    ("auth/middleware.py", "_authenticate", "exc.code"),  # the token verifier's, re-raised
    ("auth/tokens.py", "_fail", "code"),  # each _fail("token.…") call
    ("transactions/checks.py", "checked_refusal", "code"),  # a plugin's result, not a problem
    ("transactions/checks.py", "refusal", "result.code"),  # a plugin's own code: PLUGIN_REFUSAL
    ("transactions/checks.py", "check_suitability", "code"),  # the SDK's suitability_problem codes
    ("transactions/render.py", "outcome_problem", "code"),  # each outcome_problem / _Problem call
}

_STATUS_OF = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "Conflict": 409,
    "Unprocessable": 422, "ServiceUnavailable": 503,
}


def _class_attribute(item: ast.stmt, name: str) -> str | None:
    """The literal ``name = "…"`` (or ``name: T = "…"``) of a class body statement, or None."""
    if isinstance(item, ast.Assign):
        targets, value = item.targets, item.value
    elif isinstance(item, ast.AnnAssign) and item.value is not None:
        targets, value = [item.target], item.value
    else:
        return None
    if any(isinstance(t, ast.Name) and t.id == name for t in targets) and isinstance(value, ast.Constant):
        return str(value.value)
    return None


class _Scan(ast.NodeVisitor):
    """Codes one module of the host emits, with the status its raise implies where the call says."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.functions: list[str] = ["<module>"]
        self.codes: dict[str, set[int | None]] = {}
        self.variable: set[tuple[str, str, str]] = set()

    def add(self, code: str, status: int | None = None) -> None:
        self.codes.setdefault(code, set()).add(status)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for item in node.body:
            value = _class_attribute(item, "default_code")
            if value is not None:
                self.add(value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        callee = ast.unparse(node.func).rsplit(".", 1)[-1]
        for keyword in node.keywords:
            if keyword.arg not in ("code", "type_code"):
                continue
            if isinstance(keyword.value, ast.Constant):
                self.add(str(keyword.value.value), _STATUS_OF.get(callee) if keyword.arg == "code" else None)
            elif not (isinstance(keyword.value, ast.Name) and keyword.value.id == "PLUGIN_REFUSAL"):
                self.variable.add((self.rel, self.functions[-1], ast.unparse(keyword.value)))
        positional = {"_fail": 0, "outcome_problem": 1, "_Problem": 1, "type_uri": 1}.get(callee)
        if positional is not None and len(node.args) > positional:
            arg = node.args[positional]
            if isinstance(arg, ast.Constant):
                status = node.args[0].value if callee in ("outcome_problem", "_Problem") else None
                self.add(str(arg.value), status if isinstance(status, int) else None)
        if callee == "get" and ast.unparse(node.func) == "_HTTP_CODES.get":
            self.add(str(node.args[1].value))  # type: ignore[attr-defined]
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id == "_HTTP_CODES" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                self.add(str(value.value), key.value)  # type: ignore[union-attr]
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:  # ``result.code or "transaction.failed"``
        *first, last = node.values
        if (
            isinstance(node.op, ast.Or) and isinstance(last, ast.Constant)
            and any(isinstance(v, ast.Attribute) and v.attr == "code" for v in first)
        ):
            self.add(str(last.value))
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:  # ``{"code": "invalid-input", ...}``
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                self.add(str(value.value))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "PLUGIN_REFUSAL":
            self.add(PLUGIN_REFUSAL)


def _scan() -> tuple[dict[str, set[int | None]], set[tuple[str, str, str]]]:
    codes: dict[str, set[int | None]] = {}
    variable: set[tuple[str, str, str]] = set()
    for path in sorted(CORE.rglob("*.py")):
        if path in NOT_EMITTERS:
            continue
        scan = _Scan(path.relative_to(CORE).as_posix())
        scan.visit(ast.parse(path.read_text(encoding="utf-8")))
        for code, statuses in scan.codes.items():
            codes.setdefault(code, set()).update(statuses)
        variable |= scan.variable
    for code, status in _registry_codes():
        codes.setdefault(code, set()).add(status)
    for code in _suitability_codes():
        codes.setdefault(code, set()).add(422)
    return codes, variable


def _registry_codes() -> Iterator[tuple[str, int | None]]:
    """``registry.<code>`` of each error class of the registry (``api/registry_errors.translate``)."""
    for node in ast.parse(REGISTRY_ERRORS.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            code = _class_attribute(item, "code")
            if code is not None:
                yield f"registry.{code}", None


def _suitability_codes() -> Iterator[str]:
    """The codes ``fulcrum_sdk._validate.suitability_problem`` returns (``checks.check_suitability``)."""
    tree = ast.parse(SDK_VALIDATE.read_text(encoding="utf-8"))
    function = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "suitability_problem"
    )
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            first = node.value.elts[0]
            assert isinstance(first, ast.Constant)
            yield str(first.value)


EMITTED, VARIABLE = _scan()


def test_the_scan_finds_codes_of_every_kind() -> None:
    """The scan itself works: it sees a literal code, a default code, a token code, an outcome code,
    a registry code, a suitability code, a litestar mapping and a plugin refusal."""
    for code in (
        "scope.insufficient", "db.unavailable", "token.expired", "idempotency.expired", "registry.four-eyes",
        "suitability.risk_too_high", "rate-limited", "invalid-input", "transaction.failed", PLUGIN_REFUSAL,
    ):
        assert code in EMITTED, code


def test_every_code_the_host_emits_is_documented() -> None:
    """A code in the source without a catalogue entry fails: add the entry to problem_types.CATALOGUE."""
    assert sorted(code for code in EMITTED if by_code(code) is None) == []


def test_every_documented_code_is_emitted_somewhere() -> None:
    """An entry no code emits is dead documentation: remove it (or emit it)."""
    assert sorted(entry.code for entry in CATALOGUE if entry.code not in EMITTED) == []


def test_codes_built_from_variables_are_the_reviewed_ones() -> None:
    """A new ``code=`` that is not a literal is a code the scan cannot read: say here where it comes from
    (and make the scan read it there)."""
    assert sorted(VARIABLE) == sorted(VARIABLE_CODES)


def test_each_raise_status_is_a_documented_status() -> None:
    """Where the source says the status (``Forbidden(code=…)``, an outcome's status, the HTTP mapping),
    the entry lists it."""
    wrong = {
        code: sorted(s for s in statuses if s is not None and s not in entry.statuses)
        for code, statuses in EMITTED.items()
        if (entry := by_code(code)) is not None
    }
    assert {code: s for code, s in wrong.items() if s} == {}


def test_each_error_class_default_code_has_its_status() -> None:
    """A ``CoreError`` subclass's ``default_code`` is documented with that class's status."""
    import fulcrum_core.data.errors
    import fulcrum_core.transactions.checks  # noqa: F401  (their error classes)
    from fulcrum_core.errors import CoreError

    def subclasses(cls: type[CoreError]) -> Iterator[type[CoreError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in (CoreError, *subclasses(CoreError)):
        entry = by_code(cls.default_code)
        assert entry is not None, cls
        assert cls.status in entry.statuses, (cls, entry.statuses)


def test_catalogue_entries_are_well_formed() -> None:
    """Codes are unique URI-safe slugs; every entry says what it means and what to do."""
    codes = [entry.code for entry in CATALOGUE]
    assert len(codes) == len(set(codes))
    for entry in CATALOGUE:
        assert re.fullmatch(r"[a-z][a-z0-9_.-]*", entry.code), entry.code
        assert entry.statuses, entry.code
        assert all(400 <= s <= 599 for s in entry.statuses), entry.code
        assert all((entry.title, entry.meaning, entry.action)), entry.code
        assert msgspec.convert(msgspec.to_builtins(entry), ProblemType) == entry


# --- Served: each type dereferences on the app that answered it -------------------------------------


@pytest.fixture
def app(make_app: Callable[..., Any], kit: Any) -> Any:
    """The real app with a fund-ordering plugin (a transaction type with an amount)."""
    from .test_transactions_openapi import _fund_plugin

    return make_app(_fund_plugin(kit))


def _follow(app: Any, problem: dict[str, Any]) -> dict[str, Any]:
    """GET the problem's ``type`` on the app itself (no token); its JSON, after checking its HTML page
    names the code (the type's last segment: the problem's ``code`` but for a plugin's own)."""
    assert "code" in problem
    path = urlsplit(problem["type"]).path
    page = app.client.get(path, headers=HTML)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert f"<code>{path.rsplit('/', 1)[1]}</code>" in page.text
    doc = app.client.get(path)
    assert doc.status_code == 200
    assert doc.headers["content-type"] == "application/json"
    body: dict[str, Any] = doc.json()
    assert body["type"] == problem["type"]
    return body


def test_a_401_type_leads_to_its_page(app: Any) -> None:
    """``/v1/home`` without a token: ``token.missing``, typed under the issuer's ``/problems/``."""
    response = app.client.get("/v1/home")
    problem = response.json()
    assert (response.status_code, problem["code"]) == (401, "token.missing")
    assert problem["type"] == "http://127.0.0.1:8000/problems/token.missing"  # the default issuer's
    doc = _follow(app, problem)
    assert (doc["code"], doc["statuses"], doc["remedy"]) == ("token.missing", [401], "reauthenticate")


def test_a_transaction_422_type_leads_to_its_page(app: Any) -> None:
    """An amount of 12.5 fen is refused with a 422 whose type is documented and names the field."""
    from .test_transactions_openapi import _post

    response = _post(app, {"type": "fund.order", "params": {"fund": "F1", "amount_fen": 12.5}}, "k-frac")
    problem = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    assert problem["field"] == "params.amount_fen"
    assert _follow(app, problem)["code"] == problem["code"] == "transaction.invalid_params"


def test_a_plugins_refusal_keeps_its_code_and_is_typed_as_a_refusal(app: Any) -> None:
    """The plugin's own code stays ``code``; its type is the catalogue's documented refusal."""
    from .test_transactions_openapi import _post

    response = _post(app, {"type": "fund.order", "params": {"fund": "GONE", "amount_fen": 100}}, "k-gone")
    problem = response.json()
    assert (response.status_code, problem["code"]) == (422, "fund.closed")
    assert problem["type"].endswith("/problems/" + PLUGIN_REFUSAL)
    assert _follow(app, problem)["code"] == PLUGIN_REFUSAL
    replayed = _post(app, {"type": "fund.order", "params": {"fund": "GONE", "amount_fen": 100}}, "k-gone")
    assert replayed.json()["type"] == problem["type"]  # stored and replayed with the same type


def test_a_registry_404_type_leads_to_its_page(app: Any) -> None:
    """The registry's index on an unknown project: ``registry.not-found``, documented."""
    token = app.runtime.tokens.issue("rita", ["registry:review"], kind="staff")
    response = app.get("/registry/simple/no-such-project/", token=token)
    problem = response.json()
    assert (response.status_code, problem["code"]) == (404, "registry.not-found")
    assert _follow(app, problem)["statuses"] == [404]


def test_an_unknown_route_and_a_bad_parameter_are_documented(app: Any) -> None:
    """Litestar's own errors too: an unknown path and a query parameter that fails its schema."""
    for path, token in (("/v1/nowhere", True), ("/v1/search?q=x&page=abc", True)):
        response = app.get(path) if token else app.client.get(path)
        assert "code" in response.json()
        _follow(app, response.json())


def test_an_unknown_code_is_a_404_problem(app: Any) -> None:
    """A code nobody emits is not found, as a problem naming the path parameter (in either format)."""
    for headers in ({}, HTML):
        response = app.client.get("/problems/no.such-code", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert (problem["code"], problem["field"]) == ("not-found", "code")
        assert problem["type"].endswith("/problems/not-found")


def test_the_index_lists_the_catalogue_as_json(app: Any) -> None:
    """``GET /problems`` without Accept: JSON of the documented shape, every entry, each typed under
    ``base``; no token needed and no rate limit counted."""
    from fulcrum_core.api.problems import ProblemTypeIndex

    response = app.client.get("/problems")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Accept"
    index = msgspec.convert(response.json(), ProblemTypeIndex)
    assert index.base == "http://127.0.0.1:8000/problems/"
    assert [doc.code for doc in index.items] == [entry.code for entry in CATALOGUE]
    assert all(doc.type == index.base + doc.code for doc in index.items)
    assert set(response.json()["items"][0]) == {
        "type", "code", "statuses", "title", "meaning", "action", "remedy", "members", "headers"
    }


def test_the_index_page_links_every_code(app: Any) -> None:
    """A browser gets a page linking each code's page; no script, nothing loaded from elsewhere."""
    response = app.client.get("/problems", headers=HTML)
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<script" not in response.text
    for entry in CATALOGUE:
        assert f'href="/problems/{entry.code}"' in response.text


def test_the_pages_escape_catalogue_text(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text with markup is shown as text on both pages, never as markup."""
    from fulcrum_core.api import problems

    hostile = ProblemType(
        code="x.test", statuses=(400,), title='<script>alert("t")</script>', meaning="a & b <i>",
        action="send `<b>` and \"q\"", remedy="fix-request", members=("<m>",),
    )
    monkeypatch.setattr(problems, "by_code", lambda code: hostile if code == "x.test" else None)
    monkeypatch.setattr(problems, "CATALOGUE", (hostile,))
    for path in ("/problems/x.test", "/problems"):
        page = app.client.get(path, headers=HTML).text
        assert [tag for tag in ("<script", "<i>", "<b>", "<m>") if tag in page] == []
        assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in page
    page = app.client.get("/problems/x.test", headers=HTML).text
    assert "a &amp; b &lt;i&gt;" in page
    assert "<code>&lt;b&gt;</code>" in page  # backticks become <code>, their text still escaped


def test_a_configured_base_types_every_problem(make_app: Callable[..., Any]) -> None:
    """``problem_base_url`` (a developer portal) replaces the issuer's address in every type."""
    app = make_app(problem_base_url="https://bank.example/errors")
    problem = app.client.get("/v1/home").json()
    assert problem["type"] == "https://bank.example/errors/token.missing"
    assert app.client.get("/problems").json()["base"] == "https://bank.example/errors/"


def test_the_base_setting_takes_absolute_urls_only() -> None:
    """``FULCRUM_PROBLEM_BASE_URL`` is read, and a relative or non-http value refused by name."""
    from fulcrum_core.settings import SettingsError, load_settings

    url = "https://bank.example/errors/"
    assert load_settings(environ={"FULCRUM_PROBLEM_BASE_URL": url}).problem_base_url == url
    for bad in ("/problems/", "ftp://x.example/p/", "https:// space.example/"):
        with pytest.raises(SettingsError, match="FULCRUM_PROBLEM_BASE_URL"):
            load_settings(environ={"FULCRUM_PROBLEM_BASE_URL": bad})


def test_the_openapi_document_describes_the_catalogue_routes(app: Any) -> None:
    """Both routes are in the schema, public, with their JSON shape and the HTML alternative."""
    spec = app.client.get("/schema/openapi.json").json()
    for path in ("/problems", "/problems/{code}"):
        operation = spec["paths"][path]["get"]
        assert "security" not in operation
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/html"}
    assert "404" in spec["paths"]["/problems/{code}"]["get"]["responses"]
    assert "ProblemTypeDoc" in spec["components"]["schemas"]


def test_the_openapi_document_leads_from_problems_to_their_types(app: Any) -> None:
    """The document links the catalogue (``externalDocs``) and every problem schema says what its
    ``type`` and ``code`` are for."""
    spec = app.client.get("/schema/openapi.json").json()
    assert spec["externalDocs"]["url"] == "http://127.0.0.1:8000/problems/"
    schemas = spec["components"]["schemas"]
    for name in ("InputProblem", "AccessProblem", "RateLimitProblem", "TransactionProblem"):
        properties = schemas[name]["properties"]
        assert "GET /problems" in properties["type"]["description"], name
        assert "switch on" in properties["code"]["description"], name


def test_an_unexpected_exception_is_the_documented_internal_problem(
    log_records: Callable[[str], list[Any]],
) -> None:
    """A handler's unexpected exception answers the 500 problem ``internal`` (its text is not sent) and
    is logged, so the request id the problem asks to report leads to it."""
    from fulcrum_core.errors import problem_details_plugin
    from litestar import Litestar, get
    from litestar.testing import TestClient

    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    records = log_records("fulcrum.api")
    app = Litestar([boom], plugins=[problem_details_plugin("https://bank.example/problems/")])
    with TestClient(app) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert (problem["code"], problem["type"]) == ("internal", "https://bank.example/problems/internal")
    assert "secret" not in response.text
    assert [r.exc_info[1].args for r in records if r.exc_info] == [("secret internals",)]


def test_the_catalogue_is_outside_the_per_client_rate_limit(make_app: Callable[..., Any]) -> None:
    """Like /schema: no token, so no client to count; a client past its limit can still read the docs."""
    from fulcrum_core.settings import RateLimit

    app = make_app(rate_limit=RateLimit(requests=1, window_seconds=3600))
    token = app.token()
    assert [app.get("/v1/transaction-types", token=token).status_code for _ in range(2)] == [200, 429]
    limited = app.get("/v1/transaction-types", token=token).json()
    assert [app.client.get(urlsplit(limited["type"]).path).status_code for _ in range(3)] == [200] * 3
    assert app.get("/problems", token=token).status_code == 200


@pytest.mark.parametrize(
    ("stored", "replayed"), [("fund.closed", PLUGIN_REFUSAL), ("transaction.failed", "transaction.failed")]
)
def test_a_problem_journaled_under_the_old_base_replays_with_a_type_that_leads_somewhere(
    app: Any, stored: str, replayed: str
) -> None:
    """A refusal stored when types were under a domain nobody serves is replayed typed as now: a host
    code keeps its entry, a plugin's own code is a plugin's refusal; the rest of the body is as stored."""
    from fulcrum_core.problem_types import LEGACY_PROBLEM_BASE
    from sqlalchemy import text

    from .test_transactions_openapi import _post

    payload = {"type": "fund.order", "params": {"fund": "GONE", "amount_fen": 100}}
    first = _post(app, payload, "k-old").json()
    with app.runtime.db.engine.begin() as conn:
        updated = conn.execute(
            text("UPDATE transactions SET response_body = replace(response_body, :new, :old)"),
            {"new": first["type"], "old": LEGACY_PROBLEM_BASE + stored},
        )
        assert updated.rowcount == 1
        body = conn.execute(text("SELECT response_body FROM transactions")).scalar_one()
        assert LEGACY_PROBLEM_BASE + stored in body
    again = _post(app, payload, "k-old")
    assert again.json() == {**first, "type": "http://127.0.0.1:8000/problems/" + replayed}
    _follow(app, again.json())


def test_a_renamed_code_keeps_its_old_page_answering(app: Any) -> None:
    """``unknown-customer`` and ``customer.unknown`` named one condition: the host answers the latter
    only, and the old link still leads to its page."""
    from fulcrum_core.problem_types import RENAMED, by_code

    assert by_code("unknown-customer") is by_code("customer.unknown") is not None
    assert all(by_code(old) is by_code(new) is not None for old, new in RENAMED.items())
    page = app.client.get("/problems/unknown-customer", headers={"Accept": "application/json"})
    assert page.status_code == 200, page.text
    assert page.json()["code"] == "customer.unknown"

