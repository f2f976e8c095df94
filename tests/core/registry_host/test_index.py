"""The PEP 503 index serves approved, not suspended wheels only, to staff tokens, and refuses the rest."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHECKLIST, publish


def _setup(make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]) -> tuple[Any, Any, Any]:
    """The app's client, sending a reviewer's token, its registry, and an approved and a pending release."""
    harness = make_app()
    from fulcrum_core.registry_host import registry_of

    service = registry_of(harness.runtime).service
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    approved = publish(service, wheel_for(manifest, version="1.0.0"))
    service.approve(approved.id, reviewer="bob", checklist=CHECKLIST)
    pending = publish(service, wheel_for(manifest, version="1.1.0"))
    token = harness.runtime.tokens.issue("rita", ["registry:review"], kind="staff")
    harness.client.headers["Authorization"] = f"Bearer {token}"
    return harness.client, service, (approved, pending)


def _basic(user: str, password: str) -> dict[str, str]:
    """``Authorization: Basic`` as pip sends it from ``https://user:password@host/``."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _paths(approved: Any) -> list[str]:
    return [
        "/registry/simple/",
        "/registry/simple/fulcrum-notices/",
        f"/registry/files/{approved.artifact.sha256}/{approved.artifact.filename}",
    ]


def test_the_index_needs_credentials_and_says_so_for_pip(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Without credentials every index route is a 401 challenging Basic (for pip) and Bearer."""
    client, _service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    del client.headers["Authorization"]
    for path in _paths(approved):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "token.missing"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Basic realm="fulcrum registry"'), challenge
        assert 'Bearer realm="fulcrum"' in challenge
        assert b"PK" not in response.content


def test_basic_credentials_carry_the_token_as_user_token(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``__token__:<token>`` serves the wheel; another user or a bad token is a 401 in words."""
    client, _service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    del client.headers["Authorization"]
    token = client.app.state["runtime"].tokens.issue("ci", ["registry:review"], kind="staff")
    for path in _paths(approved):
        assert client.get(path, headers=_basic("__token__", token)).status_code == 200, path
    wheel = client.get(_paths(approved)[2], headers=_basic("__token__", token))
    assert wheel.content[:2] == b"PK"

    other_user = client.get("/registry/simple/", headers=_basic("alice", token))
    assert (other_user.status_code, other_user.json()["code"]) == (401, "token.malformed")
    assert "__token__" in other_user.json()["detail"]
    assert other_user.headers["www-authenticate"].startswith('Basic realm="fulcrum registry"')
    forged = client.get("/registry/simple/", headers=_basic("__token__", token[:-4] + "AAAA"))
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    garbage = client.get("/registry/simple/", headers={"Authorization": "Basic %%%"})
    assert (garbage.status_code, garbage.json()["code"]) == (401, "token.malformed")


def test_basic_is_for_the_index_only(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The registry API and the app's routes still take Bearer only: Basic there is no token at all."""
    client, _service, _releases = _setup(make_app, kit, wheel_for)
    token = client.headers.pop("Authorization").removeprefix("Bearer ")
    refused = client.get("/registry/v1/releases", headers=_basic("__token__", token))
    assert (refused.status_code, refused.json()["code"]) == (401, "token.missing")
    assert "Basic" not in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("scopes", "kind", "publisher", "visible"),
    [
        (["registry:install"], "staff", None, True),  # a deployment's installer: every approved wheel
        (["registry:publish"], "staff", "test-bank", True),  # its own publisher's wheels
        (["registry:publish"], "staff", "other-bank", False),  # not another partner's
        (["platform:read"], "staff", None, None),  # staff without a registry scope: 403
        (["home:read"], "customer", None, None),  # a customer: 403
    ],
)
def test_who_may_install_what(
    make_app: Callable[..., Any],
    kit: Any,
    wheel_for: Callable[..., Path],
    scopes: list[str],
    kind: str,
    publisher: str | None,
    visible: bool | None,
) -> None:
    """Installers and reviewers install anything approved, a publisher only its own; other tokens are
    refused."""
    client, _service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    runtime = client.app.state["runtime"]
    token = runtime.tokens.issue("someone", scopes, kind=kind, publisher=publisher)
    headers = _basic("__token__", token)
    responses = [client.get(path, headers=headers) for path in _paths(approved)]
    if visible is None:
        assert [r.status_code for r in responses] == [403, 403, 403]
        return
    assert ("fulcrum-notices" in responses[0].text) is visible
    assert [r.status_code for r in responses[1:]] == ([200, 200] if visible else [404, 404])


def test_an_install_token_reads_the_index_and_nothing_else(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``registry:install`` is what a deployment's pipeline holds: it installs every approved wheel but
    may not list releases, review, or suspend (403 naming the scope it lacks)."""
    client, _service, (approved, pending) = _setup(make_app, kit, wheel_for)
    token = client.app.state["runtime"].tokens.issue("deploy", ["registry:install"], kind="staff")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/registry/files/{approved.artifact.sha256}/{approved.artifact.filename}",
                      headers=headers).status_code == 200
    listed = client.get("/registry/v1/releases", headers=headers)
    assert listed.status_code == 403, listed.text
    for action, body in (("review", {"decision": "approve"}), ("suspend", {"reason": "a test"})):
        refused = client.post(f"/registry/v1/releases/{pending.id}/{action}", json=body, headers=headers)
        assert refused.status_code == 403, (action, refused.text)


def test_only_approved_files_are_listed_and_served(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """1.0.0 (approved) is linked with its hash and downloadable; 1.1.0 (in review) is neither."""
    client, _service, (approved, pending) = _setup(make_app, kit, wheel_for)
    root = client.get("/registry/simple/")
    assert root.status_code == 200
    assert 'href="fulcrum-notices/"' in root.text
    page = client.get("/registry/simple/Fulcrum_Notices/")  # any spelling normalises to the project
    assert page.status_code == 200
    assert f"#sha256={approved.artifact.sha256}" in page.text
    assert pending.artifact.sha256 not in page.text
    wheel = client.get(f"/registry/files/{approved.artifact.sha256}/{approved.artifact.filename}")
    assert wheel.status_code == 200
    assert wheel.content[:2] == b"PK"
    hidden = client.get(f"/registry/files/{pending.artifact.sha256}/{pending.artifact.filename}")
    assert hidden.status_code == 404


def test_suspension_and_bad_requests_are_404(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A suspended project disappears; unknown projects, wrong names and malformed hashes are refused."""
    client, service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    sha, name = approved.artifact.sha256, approved.artifact.filename
    assert client.get(f"/registry/files/{sha}/other-1.0-py3-none-any.whl").status_code == 404
    assert client.get("/registry/simple/nothing-here/").status_code == 404
    assert client.get(f"/registry/files/{'z' * 64}/{name}").status_code == 400
    service.suspend(approved.id, actor="carol", reason="incident")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 404
    assert client.get(f"/registry/files/{sha}/{name}").status_code == 404
    assert "fulcrum-notices" not in client.get("/registry/simple/").text


def test_a_malformed_hash_is_refused_in_words_naming_the_value(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A file's hash that is no SHA-256 digest said ``text matching ^[0-9a-f]{64}(?!\\n)$``: it says
    what a digest is, with the value sent, escaped."""
    client, _service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    answer = client.get(f"/registry/files/abc%E2%80%AE/{approved.artifact.filename}")
    assert answer.status_code == 400
    problem = answer.json()
    assert (problem["code"], problem["field"]) == ("invalid-input", "sha256")
    expected = "'abc\\u202e' is not a SHA-256 digest: 64 lowercase hexadecimal digits"
    assert problem["errors"][0]["message"] == expected
    assert "regex" not in problem["detail"]
    assert "[0-9a-f]" not in problem["detail"]


def test_a_suspended_publishers_wheels_are_not_served(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Suspending the publisher hides its approved project like suspending the release does."""
    client, service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    service.suspend_publisher("test-bank", actor="carol", reason="incident")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 404
    sha, name = approved.artifact.sha256, approved.artifact.filename
    assert client.get(f"/registry/files/{sha}/{name}").status_code == 404
    service.reinstate_publisher("test-bank", actor="dave", reason="cleared")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 200


def _first_party_and_impostor(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> tuple[Any, Any, Any, Path]:
    """A reviewer's client, the registry, the approved first-party ``wealth-checkup`` 1.0.0, and a wheel
    of the partner plugin ``city-coupons`` named as the first party's project (fulcrum-wealth-checkup)."""
    import msgspec

    client, service, _releases = _setup(make_app, kit, wheel_for)
    ours = kit.manifest("wealth-checkup", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    first_party = publish(service, wheel_for(ours, version="1.0.0"))
    service.approve(first_party.id, reviewer="bob", checklist=CHECKLIST)
    service.create_publisher(
        {"id": "city-partner", "name": "城市优惠", "kind": "partner", "contact": "ops@city.example"},
        actor="platform",
    )
    theirs = msgspec.structs.replace(
        kit.manifest("city-coupons", hooks=["home_slot_offers"], scopes=["slot:home.notice"]),
        publisher="city-partner",
        kind="partner",
    )
    impostor = wheel_for(theirs, version="9.0.0", dist="fulcrum_wealth_checkup")
    return client, service, first_party, impostor


def test_a_wheel_named_after_another_plugins_project_fails_its_checks(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A partner's plugin shipped as fulcrum-wealth-checkup fails ``project.matches_id`` and never reaches
    review, so the index's fulcrum-wealth-checkup holds the first party's wheel alone."""
    client, service, first_party, impostor = _first_party_and_impostor(make_app, kit, wheel_for)
    release = publish(service, impostor, publisher="city-partner", by="mallory")
    assert release.state == "checks_failed"
    assert release.failed_checks == ("project.matches_id",)
    failed = next(c for c in release.checks if c.id == "project.matches_id")
    assert failed.details == (
        "the wheel's project is 'fulcrum-wealth-checkup', "
        "plugin 'city-coupons' must be 'fulcrum-city-coupons'",
    )
    page = client.get("/registry/simple/fulcrum-wealth-checkup/")
    assert page.status_code == 200
    assert first_party.artifact.filename in page.text
    assert release.artifact.sha256 not in page.text


def _index_warnings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Catch the index's warnings here, each one (its throttle is per process, five minutes)."""
    import logging

    from fulcrum_core.api import registry_index
    from fulcrum_core.observability.throttle import ThrottledWarning

    logger = logging.getLogger("fulcrum.registry.index")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])
    fresh = ThrottledWarning(logger, registry_index._LEFT_OUT._message, every_s=0.0)
    monkeypatch.setattr(registry_index, "_LEFT_OUT", fresh)


def test_a_project_two_plugins_share_serves_only_the_plugin_it_is_named_after(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An impostor approved before ``project.matches_id`` existed is kept out of the first party's project
    (page and file), and is not served alone either once the first party's release is suspended; the
    index says so in its log, naming the release, for the platform team to suspend it."""
    from fulcrum_registry import checks

    client, service, first_party, impostor = _first_party_and_impostor(make_app, kit, wheel_for)
    _index_warnings(monkeypatch, caplog)
    def unchecked(facts: Any, ctx: Any) -> Any:  # the registry as it was: nothing tied project to plugin
        return checks._result("project.matches_id", "passed")

    monkeypatch.setitem(checks._RUNNERS, "project.matches_id", unchecked)
    old = publish(service, impostor, publisher="city-partner", by="mallory")
    assert old.state == "in_review"
    service.approve(old.id, reviewer="bob", checklist=CHECKLIST)

    page = client.get("/registry/simple/fulcrum-wealth-checkup/")
    assert page.status_code == 200
    assert first_party.artifact.sha256 in page.text
    assert old.artifact.sha256 not in page.text
    assert client.get(f"/registry/files/{old.artifact.sha256}/{old.artifact.filename}").status_code == 404
    assert 'href="fulcrum-wealth-checkup/"' in client.get("/registry/simple/").text

    service.suspend(first_party.id, actor="carol", reason="an incident")  # the impostor alone is left
    assert client.get("/registry/simple/fulcrum-wealth-checkup/").status_code == 404
    assert "fulcrum-wealth-checkup" not in client.get("/registry/simple/").text
    warned = " ".join({r.getMessage() for r in caplog.records if r.name == "fulcrum.registry.index"})
    assert f"release {old.id} of plugin city-coupons" in warned, warned
    assert old.artifact.filename in warned


def test_a_project_holding_two_plugins_wheels_is_not_served(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ids that differ only in folded hyphens (city--coupons, city-coupons, both approved before ids
    refused ``--``) share the project fulcrum-city-coupons: neither is served under it."""
    from types import SimpleNamespace

    from fulcrum_core.api.registry_index import approved_files

    def release(rid: int, plugin: str, filename: str) -> SimpleNamespace:
        return SimpleNamespace(
            id=rid, plugin_id=plugin, artifact=SimpleNamespace(filename=filename), manifest_problem=None
        )

    releases = [
        release(1, "city-coupons", "fulcrum_city_coupons-1.0.0-py3-none-any.whl"),
        release(2, "city--coupons", "fulcrum_city_coupons-2.0.0-py3-none-any.whl"),
        release(3, "notices", "fulcrum_notices-1.0.0-py3-none-any.whl"),
    ]

    class Service:
        def active_policy(self) -> dict[str, dict[str, Any]]:
            return {r.plugin_id: {"v": SimpleNamespace(release_id=r.id)} for r in releases}

        def list_releases(self, query: dict[str, Any]) -> Any:
            return SimpleNamespace(items=releases, next_cursor=None)

    _index_warnings(monkeypatch, caplog)
    served = approved_files(Service())  # type: ignore[arg-type]
    assert {name: [r.id for r in rs] for name, rs in served.items()} == {"fulcrum-notices": [3]}
    [warned] = {r.getMessage() for r in caplog.records if r.name == "fulcrum.registry.index"}
    assert "project 'fulcrum-city-coupons'" in warned, warned
    assert "plugins city--coupons, city-coupons" in warned, warned
