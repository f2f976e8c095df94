"""``/registry/v1``: publishing, review, the kill switch and audit over HTTP, and every error status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from .conftest import CHECKLIST

BASE = "/registry/v1"
PUBLISHER = {"id": "test-bank", "name": "测试银行", "kind": "department", "contact": "ops@bank.example"}


class Api:
    """An app with the registry and staff tokens: rita and rob review, paul publishes for test-bank."""

    def __init__(self, harness: Any, staff: Callable[..., str]) -> None:
        self.client = harness.client
        self.runtime = harness.runtime
        rt = harness.runtime
        self.rita = staff(rt, "rita", "registry:review")
        self.rob = staff(rt, "rob", "registry:review")
        self.paul = staff(rt, "paul", "registry:publish", publisher="test-bank")
        self.olga = staff(rt, "olga", "registry:publish", publisher="other-bank")
        self.nobody = staff(rt, "nemo", "registry:publish")  # publishes for no one

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, BASE + path, headers=headers, **kwargs)

    def submit(self, wheel: Path, token: str | None = None, **form: str) -> Any:
        files = {"wheel": (wheel.name, wheel.read_bytes(), "application/octet-stream")}
        return self.call("POST", "/releases", token or self.paul, files=files, data=form)

    def approve(self, release_id: int, token: str, **extra: Any) -> Any:
        body = {"decision": "approve", "checklist": CHECKLIST, **extra}
        return self.call("POST", f"/releases/{release_id}/review", token, json=body)


@pytest.fixture
def api(make_app: Callable[..., Any], staff: Callable[..., str]) -> Api:
    """The registry API with the test-bank publisher created."""
    api = Api(make_app(), staff)
    assert api.call("POST", "/publishers", api.rita, json=PUBLISHER).status_code == 201
    return api


@pytest.fixture
def manifest(kit: Any) -> Any:
    """A plugin asking for a low-sensitivity placement plus two optional scopes."""
    return kit.manifest(
        "notices",
        hooks=["home_slot_offers"],
        scopes=["slot:home.notice"],
        optional=["location:city", "profile:basic"],
    )


def _problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


def test_submit_review_and_catalogue(api: Api, manifest: Any, wheel_for: Callable[..., Path]) -> None:
    """A publisher submits; the release shows checks and diff; a reviewer approves; the catalogue lists it."""
    submitted = api.submit(wheel_for(manifest))
    assert submitted.status_code == 201, submitted.text
    release = submitted.json()["release"]
    assert release["state"] == "in_review"
    assert release["submitted_by"] == "paul"
    assert {c["id"] for c in release["checks"]} >= {"wheel.well_formed", "entry_point.matches_id"}
    assert submitted.json()["diff"]["added_scopes"] == ["location:city", "profile:basic", "slot:home.notice"]

    shown = api.call("GET", f"/releases/{release['id']}", api.rita).json()
    assert shown["release"]["approvals_needed"] == 1
    approved = api.approve(release["id"], api.rita, grant=["slot:home.notice"], reasons=["looks fine"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["release"]["state"] == "approved"
    assert approved.json()["release"]["granted_scopes"] == ["slot:home.notice"]

    catalogue = api.call("GET", "/plugins", api.paul, params={"q": "notices", "kind": "department"}).json()
    assert [(p["id"], p["approved_versions"]) for p in catalogue["items"]] == [("notices", ["1.0.0"])]
    assert api.call("GET", "/plugins", api.rita, params={"state": "rejected"}).json()["total"] == 0
    listed = api.call("GET", "/releases", api.rita, params={"state": "approved", "limit": 1}).json()
    assert listed["total"] == 1
    assert listed["next_cursor"] is None
    assert [p["id"] for p in api.call("GET", "/publishers", api.paul).json()["items"]] == ["test-bank"]


def test_the_identical_wheel_again_answers_its_release_not_a_new_one(
    api: Api, manifest: Any, wheel_for: Callable[..., Path]
) -> None:
    """A retry after a lost answer (same wheel, same publisher) is 200 with the release filed the first
    time and its Location; it filed a new checks_failed release ("raise the version") each time."""
    wheel = wheel_for(manifest)
    first = api.submit(wheel)
    assert first.status_code == 201, first.text
    release = first.json()["release"]
    assert first.headers["location"] == f"{BASE}/releases/{release['id']}"
    for _ in range(2):
        again = api.submit(wheel)
        assert again.status_code == 200, again.text
        assert again.headers["location"] == f"{BASE}/releases/{release['id']}"
        assert again.json()["release"] == release
    assert api.call("GET", "/releases", api.rita).json()["total"] == 1


def test_the_catalogue_pages(api: Api, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """Three plugins, two per page: the cursor leads to the last one and then stops."""
    for name in ("p-a", "p-b", "p-c"):
        api.submit(wheel_for(kit.manifest(name, hooks=["home_slot_offers"], scopes=["slot:home.notice"])))
    first = api.call("GET", "/plugins", api.rita, params={"limit": 2}).json()
    assert [p["id"] for p in first["items"]] == ["p-a", "p-b"]
    assert first["total"] == 3
    second = api.call("GET", "/plugins", api.rita, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [p["id"] for p in second["items"]] == ["p-c"]
    assert second["next_cursor"] is None


def test_four_eyes_over_http(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """Someone holding both scopes cannot approve their own submission (403 four-eyes)."""
    both = staff(api.runtime, "bea", "registry:publish", "registry:review", publisher="test-bank")
    release = api.submit(wheel_for(manifest), both).json()["release"]
    _problem(api.approve(release["id"], both), 403, "registry.four-eyes")
    assert api.approve(release["id"], api.rita).json()["release"]["state"] == "approved"


def test_high_sensitivity_needs_two_distinct_approvers(
    api: Api, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Asking for pension:read needs two reviewers; the same one twice is refused; grants intersect."""
    manifest = kit.manifest(
        "pensions",
        hooks=["home_slot_offers"],
        scopes=["slot:home.notice"],
        optional=["pension:read", "profile:basic"],
    )
    release = api.submit(wheel_for(manifest)).json()["release"]
    assert release["approvals_needed"] == 2
    first = api.approve(release["id"], api.rita, grant=["slot:home.notice", "pension:read"]).json()["release"]
    assert first["state"] == "in_review"
    assert first["approvals"] == ["rita"]
    _problem(api.approve(release["id"], api.rita), 403, "registry.four-eyes")
    second = api.approve(release["id"], api.rob).json()["release"]
    assert second["state"] == "approved"
    assert second["granted_scopes"] == ["pension:read", "slot:home.notice"]


def test_undoing_a_kill_switch_over_http_takes_four_eyes(
    api: Api, kit: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """Resume and reinstate: 403 four-eyes for the submitter and who suspended; two for pension:read."""
    bea = staff(api.runtime, "bea", "registry:publish", "registry:review", publisher="test-bank")
    high = ["slot:home.notice", "pension:read"]
    manifest = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=high)
    release_id = api.submit(wheel_for(manifest), bea).json()["release"]["id"]
    api.approve(release_id, api.rita)
    api.approve(release_id, api.rob)
    resume = f"/releases/{release_id}/resume"
    suspend = api.call("POST", f"/releases/{release_id}/suspend", api.rita, json={"reason": "x"})
    assert suspend.status_code == 200, suspend.text

    mine = _problem(api.call("POST", resume, bea, json={"reason": "fixed"}), 403, "registry.four-eyes")
    assert f"'bea' submitted release {release_id}" in mine["detail"]
    pulled = _problem(api.call("POST", resume, api.rita, json={"reason": "ok"}), 403, "registry.four-eyes")
    assert "'rita' pulled the kill switch" in pulled["detail"]
    assert api.call("GET", f"/releases/{release_id}", api.rob).json()["release"]["pending_resume"] is None
    first = api.call("POST", resume, api.rob, json={"reason": "patched"})
    assert first.status_code == 200, first.text
    assert first.json()["release"]["state"] == "suspended"  # one of two
    queue = api.call("GET", "/releases", api.rob, params={"state": "suspended"}).json()["items"]
    for release in (
        first.json()["release"],
        api.call("GET", f"/releases/{release_id}", api.rita).json()["release"],
        *queue,
    ):
        pending = release["pending_resume"]
        assert [(a["by"], a["reason"]) for a in pending["agreed"]] == [("rob", "patched")]
        assert (pending["needed"], pending["suspended_by"]) == (2, "rita")
        assert pending["agreed"][0]["at"].startswith("20")
    _problem(api.call("POST", resume, api.rob, json={"reason": "again"}), 403, "registry.four-eyes")
    carl = staff(api.runtime, "carl", "registry:review")
    second = api.call("POST", resume, carl, json={"reason": "checked"}).json()["release"]
    assert (second["state"], second["pending_resume"]) == ("approved", None)

    reinstate = "/publishers/test-bank/reinstate"
    assert api.call("POST", "/publishers/test-bank/suspend", api.rob, json={"reason": "x"}).status_code == 200
    own = _problem(api.call("POST", reinstate, bea, json={"reason": "ours"}), 403, "registry.four-eyes")
    assert "'bea' submitted release" in own["detail"]
    _problem(api.call("POST", reinstate, api.rob, json={"reason": "ok"}), 403, "registry.four-eyes")
    assert api.call("GET", "/publishers/test-bank", api.rita).json()["pending_reinstatement"] is None
    half = api.call("POST", reinstate, api.rita, json={"reason": "a"}).json()
    assert half["suspended"] is True
    listed = api.call("GET", "/publishers", api.paul).json()["items"]
    for publisher in (half, api.call("GET", "/publishers/test-bank", api.paul).json(), *listed):
        pending = publisher["pending_reinstatement"]
        assert ([a["by"] for a in pending["agreed"]], pending["needed"], pending["suspended_by"]) == (
            ["rita"],
            2,
            "rob",
        )
    back = api.call("POST", reinstate, carl, json={"reason": "b"}).json()
    assert (back["suspended"], back["pending_reinstatement"]) == (False, None)
    assert api.call("GET", "/publishers/test-bank", api.rita).json()["pending_reinstatement"] is None


def test_waiting_lists_what_one_more_reviewer_completes_and_me_what_the_token_may(
    api: Api, kit: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """Second approvals, a second agreement to resume and to reinstate, page by page; ``me`` leaves out
    what the token's subject approved, suspended or agreed to; a publisher's token cannot ask for ``me``."""
    high = ["slot:home.notice", "pension:read"]
    manifest = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=high)
    ids = [api.submit(wheel_for(manifest, f"1.0.{n}")).json()["release"]["id"] for n in range(4)]
    carl = staff(api.runtime, "carl", "registry:review")

    def waiting(token: str, who: str = "anyone", path: str = "/releases", **params: Any) -> Any:
        response = api.call("GET", path, token, params={"waiting": who, **params})
        assert response.status_code == 200, response.text
        return response.json()

    def listed(token: str, who: str = "anyone") -> list[int]:
        return [r["id"] for r in waiting(token, who)["items"]]

    for rid in ids[:3]:
        api.approve(rid, api.rita)  # one of two
    api.approve(ids[2], api.rob)  # two of two
    first = waiting(api.rob, limit=1)
    second = waiting(api.rob, limit=1, cursor=first["next_cursor"])
    assert [r["id"] for r in first["items"] + second["items"]] == ids[:2]
    assert (first["total"], second["next_cursor"]) == (2, None)
    assert (listed(api.rita, "me"), listed(api.rob, "me")) == ([], ids[:2])

    assert api.call("POST", f"/releases/{ids[2]}/suspend", api.rob, json={"reason": "x"}).status_code == 200
    assert api.call("POST", f"/releases/{ids[2]}/resume", api.rita, json={"reason": "y"}).status_code == 200
    assert listed(api.rob) == ids[:3]
    assert (listed(api.rita, "me"), listed(api.rob, "me"), listed(carl, "me")) == ([], ids[:2], ids[:3])
    assert listed(api.paul) == ids[:3]  # a publisher sees its own releases waiting
    refused = _problem(api.call("GET", "/releases", api.paul, params={"waiting": "me"}), 403)
    assert (refused["code"], refused["field"]) == ("scope.insufficient", "waiting")
    api.approve(ids[0], api.rob)
    assert listed(carl) == ids[1:3]

    assert api.call("POST", "/publishers/test-bank/suspend", api.rob, json={"reason": "x"}).status_code == 200
    assert waiting(api.rita, path="/publishers")["items"] == []
    half = api.call("POST", "/publishers/test-bank/reinstate", api.rita, json={"reason": "y"}).json()
    assert half["suspended"] is True
    assert [p["id"] for p in waiting(api.paul, path="/publishers")["items"]] == ["test-bank"]
    assert waiting(api.rob, "me", path="/publishers")["items"] == []
    assert [p["id"] for p in waiting(carl, "me", path="/publishers")["items"]] == ["test-bank"]
    assert listed(carl) == [ids[2]]  # a suspended publisher's release cannot be approved meanwhile
    held = api.call("GET", f"/releases/{ids[1]}", api.rob).json()["release"]
    assert (held["approvals"], held["publisher_suspended"]) == (["rita"], True)  # why it is not listed


def test_kill_switch_and_audit(api: Api, manifest: Any, wheel_for: Callable[..., Path]) -> None:
    """Suspend, resume and retire move the release; each is audited and the chain verifies."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    api.approve(release_id, api.rita)
    for action, state, who in (
        ("suspend", "suspended", api.rob),
        ("resume", "approved", api.rita),  # not who pulled the kill switch
        ("retire", "retired", api.rob),
    ):
        moved = api.call("POST", f"/releases/{release_id}/{action}", who, json={"reason": f"{action} drill"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["release"]["state"] == state
    events = api.call("GET", "/audit", api.rita, params={"subject": f"release:{release_id}"}).json()
    actions = [e["action"] for e in events["items"]]
    assert actions[-3:] == ["release.suspend", "release.resume", "release.retire"]
    assert events["head"]["seq"] >= events["items"][-1]["seq"]
    verdict = api.call("GET", "/audit/verify", api.rita).json()
    assert verdict["ok"] is True
    assert verdict["broken_seq"] is None


def test_a_failed_submission_lists_every_failed_check(api: Api) -> None:
    """Garbage named like a wheel is stored as checks_failed (201), with no diff to show."""
    tmp = api.runtime.settings.state_dir
    path = Path(tmp) / "fulcrum_junk-1.0.0-py3-none-any.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a zip")
    response = api.submit(path)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["release"]["state"] == "checks_failed"
    assert "wheel.well_formed" in body["release"]["failed_checks"]
    assert body["diff"] is None


# -- error statuses -----------------------------------------------------------------------------


def test_401_without_a_token(api: Api) -> None:
    """No token: 401 with a Bearer challenge."""
    response = api.call("GET", "/releases", None)
    _problem(response, 401, "token.missing")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_403_for_the_wrong_kind_of_caller(api: Api, manifest: Any, wheel_for: Callable[..., Path]) -> None:
    """Customers, publish-only tokens on review routes, and tokens for another publisher are refused."""
    from fulcrum_sdk.scopes import APP_SCOPES

    customer = api.runtime.tokens.issue("synthetic-young-professional", APP_SCOPES)
    _problem(api.call("GET", "/plugins", customer), 403, "staff.required")
    _problem(
        api.call("POST", "/publishers", api.paul, json={**PUBLISHER, "id": "x-bank"}),
        403,
        "scope.insufficient",
    )
    _problem(
        api.submit(wheel_for(manifest), api.olga, publisher="test-bank"), 403, "registry.other-publisher"
    )
    _problem(api.submit(wheel_for(manifest), api.nobody), 403, "registry.publisher-missing")
    _problem(api.submit(wheel_for(manifest), api.rita), 403, "scope.insufficient")
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    _problem(api.call("GET", f"/releases/{release_id}", api.olga), 403, "registry.other-publisher")
    _problem(
        api.call("GET", "/releases", api.olga, params={"publisher": "test-bank"}),
        403,
        "registry.other-publisher",
    )
    assert api.call("GET", "/releases", api.olga).json()["total"] == 0
    _problem(api.call("POST", f"/releases/{release_id}/suspend", api.paul, json={"reason": "x"}), 403)


def test_404_for_unknown_ids(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """An unknown release or publisher is 404; so is submitting for a publisher that does not exist."""
    _problem(api.call("GET", "/releases/999", api.rita), 404, "registry.not-found")
    assert "ghost-bank" in _problem(api.call("GET", "/publishers/ghost-bank", api.rita), 404)["detail"]
    _problem(
        api.call("POST", "/releases/999/suspend", api.rita, json={"reason": "x"}), 404, "registry.not-found"
    )
    ghost = staff(api.runtime, "gus", "registry:publish", publisher="ghost-bank")
    _problem(api.submit(wheel_for(manifest), ghost), 404, "registry.not-found")


def test_409_carries_the_current_state(api: Api, manifest: Any, wheel_for: Callable[..., Path]) -> None:
    """Suspending a release in review is 409 with its state and the allowed actions; a taken id is 409."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    body = _problem(
        api.call("POST", f"/releases/{release_id}/suspend", api.rita, json={"reason": "x"}),
        409,
        "registry.illegal-transition",
    )
    assert body["state"] == "in_review"
    assert body["allowed"] == ["approve", "reject"]
    api.approve(release_id, api.rita)
    again = _problem(api.approve(release_id, api.rob), 409, "registry.illegal-transition")
    assert again["state"] == "approved"
    _problem(api.call("POST", "/publishers", api.rita, json=PUBLISHER), 409, "registry.already-exists")


def test_422_names_the_field(api: Api, manifest: Any, wheel_for: Callable[..., Path]) -> None:
    """Refused review input is 422 naming the field: reasons, grant, checklist item, bad filters."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    review = f"/releases/{release_id}/review"
    assert (
        _problem(api.call("POST", review, api.rita, json={"decision": "reject"}), 422)["field"] == "reasons"
    )
    bad_grant = api.approve(release_id, api.rita, grant=["pension:read"])
    assert _problem(bad_grant, 422)["field"] == "grant"
    unchecked = api.call("POST", review, api.rita, json={"decision": "approve", "checklist": {}})
    assert _problem(unchecked, 422)["field"].startswith("checklist.")
    grant_on_reject = api.call(
        "POST", review, api.rita, json={"decision": "reject", "reasons": ["no"], "grant": []}
    )
    assert _problem(grant_on_reject, 422)["field"] == "grant"
    not_a_wheel = Path(api.runtime.settings.state_dir) / "notes.txt"
    not_a_wheel.write_text("hello")
    assert _problem(api.submit(not_a_wheel), 422)["field"] == "filename"
    assert api.call("GET", f"/releases/{release_id}", api.rita).json()["release"]["state"] == "in_review"


def test_a_bad_contact_says_what_a_contact_is(api: Api) -> None:
    """A contact that is no e-mail address quoted msgspec's regular expression; it says what one is."""
    bad = api.call("POST", "/publishers", api.rita, json={**PUBLISHER, "id": "x-bank", "contact": "ops"})
    problem = _problem(bad, 400)
    assert problem["field"] == "contact"
    assert problem["detail"] == (
        "contact: must be an e-mail address that reaches the publisher, such as ops@bank.example (no spaces)"
    )


BLANK_REASON = "must be text with something besides spaces, and no NUL character"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_rejection_reason_says_so(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], blank: str
) -> None:
    """An empty reason and one of spaces are the same 400 in words (the empty one quoted msgspec's
    "Expected `str` of length >= 1", the spaces a 422); the release stays in review."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    review = {"decision": "reject", "reasons": ["fine", blank]}
    refused = _problem(api.call("POST", f"/releases/{release_id}/review", api.rita, json=review), 400)
    assert (refused["field"], refused["detail"]) == ("reasons.1", f"reasons.1: {BLANK_REASON}")
    assert api.call("GET", f"/releases/{release_id}", api.rita).json()["release"]["state"] == "in_review"


@pytest.mark.parametrize("blank", ["", "   ", "\x00"])
@pytest.mark.parametrize("action", ["suspend", "resume", "retire"])
def test_a_blank_reason_names_the_reason_field(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], action: str, blank: str
) -> None:
    """Suspend, resume and retire take one ``reason``: empty, spaces or a NUL alike are a 400 naming
    ``reason`` in words."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    api.approve(release_id, api.rita)
    path = f"/releases/{release_id}/{action}"
    refused = _problem(api.call("POST", path, api.rita, json={"reason": blank}), 400, "invalid-input")
    assert (refused["field"], refused["detail"]) == ("reason", f"reason: {BLANK_REASON}")


@pytest.mark.parametrize("action", ["review", "suspend", "resume", "retire", "publisher-suspend"])
def test_a_reason_that_would_read_reversed_is_refused_naming_the_field(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], action: str
) -> None:
    """A reason reaches the publisher and the audit as written: a RIGHT-TO-LEFT OVERRIDE (or a control
    character, a line break) is refused (422, as the registry refuses any input it cannot take) naming
    the field and the character, and nothing changes."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    spoof = "权限合理 \u202e001"
    if action == "review":
        body, path = {"decision": "reject", "reasons": ["ok", spoof]}, f"/releases/{release_id}/review"
        field = "reasons.1"
    elif action == "publisher-suspend":
        body, path, field = {"reason": spoof}, "/publishers/test-bank/suspend", "reason"
    else:
        api.approve(release_id, api.rita)
        body, path, field = {"reason": spoof}, f"/releases/{release_id}/{action}", "reason"
    refused = _problem(api.call("POST", path, api.rita, json=body), 422, "registry.invalid-input")
    assert refused["field"] == field
    assert refused["detail"] == (
        f"{field}: U+202E RIGHT-TO-LEFT OVERRIDE at index 5 is not allowed in display text"
    )
    assert api.call("GET", f"/releases/{release_id}", api.rita).json()["release"]["state"] == (
        "in_review" if action in ("review", "publisher-suspend") else "approved"
    )


def test_an_overlong_reason_says_how_long_one_may_be(api: Api) -> None:
    """A reason over 2000 characters is refused in words, not msgspec's "Expected `str` of length"."""
    refused = _problem(api.call("POST", "/releases/1/suspend", api.rita, json={"reason": "x" * 2001}), 400)
    assert refused["detail"] == "reason: must be at most 2000 characters"


def test_400_for_malformed_requests(api: Api) -> None:
    """Unparseable JSON, a missing field, a bad query type and an upload without a file are 400."""
    garbage = api.call(
        "POST",
        "/releases/1/review",
        api.rita,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert garbage.status_code == 400
    _problem(api.call("POST", "/releases/1/review", api.rita, json={"checklist": {}}), 400)
    _problem(api.call("GET", "/plugins", api.rita, params={"limit": "many"}), 400)
    _problem(api.call("GET", "/plugins", api.rita, params={"limit": 0}), 400)
    _problem(api.call("POST", "/releases", api.paul, files={"other": ("x", b"y")}), 400)
    # A filter outside its documented values is a 400 like any other bad query parameter.
    assert _problem(api.call("GET", "/plugins", api.rita, params={"kind": "alien"}), 400)["field"] == "kind"
    assert _problem(api.call("GET", "/releases", api.rita, params={"state": "gone"}), 400)["field"] == "state"
    assert _problem(api.call("GET", "/plugins", api.rita, params={"q": "x" * 101}), 400)["field"] == "q"


def test_a_wheel_field_that_is_no_file_says_so(api: Api) -> None:
    """``curl -F wheel=text`` (no ``@``) was answered "wheel: Unsupported type: <class 'str'>"."""
    sent = api.call("POST", "/releases", api.paul, files={"wheel": (None, b"fulcrum_x-1.0-py3-none-any.whl")})
    problem = _problem(sent, 400, "invalid-input")
    assert (problem["field"], problem["detail"]) == ("wheel", "wheel: must be a file (a .whl upload)")


def test_a_form_field_sent_twice_says_so(api: Api) -> None:
    """Two ``wheel`` files were answered "wheel: must be a file (a .whl upload)" and two ``publisher``
    fields "publisher: must be text or null", as if neither had been sent right; each says it was sent
    twice, and nothing is filed."""
    wheel = ("fulcrum_x-1.0-py3-none-any.whl", b"PK")
    two_files = api.call("POST", "/releases", api.paul, files=[("wheel", wheel), ("wheel", wheel)])
    problem = _problem(two_files, 400, "invalid-input")
    assert (problem["field"], problem["detail"]) == ("wheel", "wheel: is sent 2 times; send it once")
    two_ids = api.call(
        "POST", "/releases", api.paul, files={"wheel": wheel}, data={"publisher": ["test-bank", "other"]}
    )
    problem = _problem(two_ids, 400, "invalid-input")
    assert (problem["field"], problem["detail"]) == ("publisher", "publisher: is sent 2 times; send it once")
    assert api.call("GET", "/releases", api.rita).json()["total"] == 0


_STATES = "submitted, checks_failed, in_review, approved, rejected, suspended, retired"


@pytest.mark.parametrize(
    ("path", "params", "field", "message"),
    [
        ("/plugins", {"state": "bogus"}, "state", f"'bogus' is not one of: {_STATES}"),
        ("/releases", {"state": "gone"}, "state", f"'gone' is not one of: {_STATES}"),
        ("/releases", {"waiting": "yes"}, "waiting", "'yes' is not one of: anyone, me"),
        ("/publishers", {"waiting": "rob"}, "waiting", "'rob' is not one of: anyone, me"),
        ("/plugins", {"kind": "alien"}, "kind", "'alien' is not one of: department, branch, partner"),
        ("/plugins", {"limit": "many"}, "limit", "'many' is not an integer from 1 to 100"),
        ("/releases", {"limit": 101}, "limit", "'101' is not an integer from 1 to 100"),
        ("/audit", {"limit": 0}, "limit", "'0' is not an integer from 1 to 1000"),
        ("/audit", {"after": "-"}, "after", "'-' is not an integer from 0 to 2147483647"),
        (
            "/plugins",
            {"q": "x" * 101},
            "q",
            f"'{'x' * 40}…' (101 characters) is not text of 1 to 100 characters",
        ),
        (
            "/plugins",
            {"cursor": "c" * 101},
            "cursor",
            f"'{'c' * 40}…' (101 characters) is not text of at most 100 characters",
        ),
        (
            "/audit",
            {"subject": "s" * 201},
            "subject",
            f"'{'s' * 40}…' (201 characters) is not text of at most 200 characters",
        ),
        ("/releases/0", {}, "release_id", "'0' is not an integer from 1 to 2147483647"),
        ("/publishers", {"limit": 0}, "limit", "'0' is not an integer from 1 to 100"),
        (
            "/publishers", {"cursor": "Bad Id"}, "cursor",
            "'Bad Id' is not a publisher id: the next_cursor of the previous page",
        ),
        # Constraints the registry query checks too: refused here as 400s, not the registry's 422s.
        # A pattern is said in words (the parameter's description, which the OpenAPI document shows too).
        (
            "/releases", {"cursor": "abc"}, "cursor",
            "'abc' is not a release id: the next_cursor of the previous page",
        ),
        (
            "/releases",
            {"plugin": "No_Such"},
            "plugin",
            "'No_Such' is not 2 to 50 lowercase letters, digits and hyphens, starting with a letter and not "
            "ending with a hyphen",
        ),
        (
            "/plugins",
            {"publisher": "x"},
            "publisher",
            "'x' is not 2 to 50 lowercase letters, digits and hyphens, starting with a letter and not ending "
            "with a hyphen",
        ),
        (
            "/plugins",
            {"scope": "s" * 65},
            "scope",
            f"'{'s' * 40}…' (65 characters) is not text of 1 to 64 characters",
        ),
        ("/plugins", {"q": ""}, "q", "'' is not text of 1 to 100 characters"),
    ],
)
def test_a_bad_parameter_names_itself_the_value_and_the_valid_ones(
    api: Api, path: str, params: dict[str, Any], field: str, message: str
) -> None:
    """Every query and path parameter of /registry/v1 that litestar refuses is our 400 naming the
    parameter as sent (``state``, not the handler's ``release_state``), the value and what it takes;
    before, ``?state=bogus`` said only ``Invalid enum value 'bogus'``."""
    from fulcrum_core.api.input_problems import InputProblem

    problem = msgspec.convert(_problem(api.call("GET", path, api.rita, params=params), 400), InputProblem)
    assert (problem.code, problem.field, problem.detail) == ("invalid-input", field, f"{field}: {message}")
    assert problem.errors is not None
    assert len(problem.errors) == 1
    assert problem.errors[0].value == message.split("'")[1]
    enum = field in {"state", "kind", "waiting"}
    assert problem.errors[0].allowed == (message.split(": ", 1)[1].split(", ") if enum else None)


def test_several_bad_parameters_are_each_named(api: Api) -> None:
    """Two bad filters at once: both listed, the first in ``field``."""
    problem = _problem(api.call("GET", "/plugins", api.rita, params={"kind": "x", "limit": "y"}), 400)
    assert sorted(e["field"] for e in problem["errors"]) == ["kind", "limit"]
    assert problem["field"] in {"kind", "limit"}


def test_out_of_range_ids_are_400(api: Api) -> None:
    """Release ids and audit positions beyond 32 bits are refused as bad input, not looked up."""
    _problem(api.call("GET", f"/releases/{2**63}", api.rita), 400)
    _problem(api.call("GET", "/releases/0", api.rita), 400)
    _problem(api.call("GET", "/audit", api.rita, params={"after": 2**40}), 400)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/releases/1/suspend", {"reason": "x", "extra": 1}, "extra"),
        ("/publishers", {"id": "a-b", "kind": "partner", "name": "x", "contact": "a@b", "tint": 1}, "tint"),
    ],
)
def test_an_unknown_field_is_named(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    """A body with a field the operation does not take is a 400 naming that field (it said ``body``)."""
    problem = _problem(api.call("POST", path, api.rita, json=body), 400, "invalid-input")
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: is not a field here (the fields are: ")


def test_a_decision_not_allowed_names_the_allowed_ones(
    api: Api, manifest: Any, wheel_for: Callable[..., Path]
) -> None:
    """``"decision": "approved"`` said "Invalid enum value 'approved'" without the ``allowed`` values the
    catalogue's invalid-input promises for a fixed set: it gives them, and a did-you-mean."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    review = {"decision": "approved", "checklist": {}}
    problem = _problem(api.call("POST", f"/releases/{release_id}/review", api.rita, json=review), 400)
    assert (problem["field"], problem["errors"][0]["allowed"]) == ("decision", ["approve", "reject"])
    assert problem["detail"] == (
        "decision: 'approved' is not one of: approve, reject; did you mean approve?"
    )


def test_the_registry_service_words_a_value_not_allowed_alike() -> None:
    """The registry service's own refusal of a value outside a fixed set has the did-you-mean too."""
    from fulcrum_registry.errors import InvalidInput
    from fulcrum_registry.schemas import NewPublisher, validated

    with pytest.raises(InvalidInput) as caught:
        validated(NewPublisher, {"id": "a-b", "kind": "partnr", "name": "x", "contact": "a@b"})
    assert str(caught.value) == (
        "kind: 'partnr' is not one of: department, branch, partner; did you mean partner?"
    )


def test_nul_characters_in_filters_are_422(api: Api) -> None:
    """A NUL character in a search filter is refused naming the filter as sent (``q``, not the registry
    query's ``text``; no database can compare it)."""
    assert _problem(api.call("GET", "/plugins", api.rita, params={"q": "a\x00b"}), 422)["field"] == "q"
    assert (
        _problem(api.call("GET", "/audit", api.rita, params={"subject": "\x00"}), 422)["field"] == "subject"
    )
    assert _problem(api.call("GET", "/publishers/a%00b", api.rita), 422)["field"] == "publisher_id"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/publishers", {"id": "a-b", "kind": "partner", "name": "x"}, "contact"),
        ("/publishers", {}, "id"),
        ("/releases/1/suspend", {}, "reason"),
    ],
)
def test_a_missing_field_is_named(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    """A body without a required field is a 400 naming that field, not one saying the body is missing."""
    problem = _problem(api.call("POST", path, api.rita, json=body), 400, "invalid-input")
    assert problem["field"] == field
    assert problem["detail"] == f"{field}: is required"


def test_an_upload_without_the_wheel_names_it(api: Api) -> None:
    """A multipart submission with the file under another name: 400 naming ``wheel``."""
    files = {"other": ("a.whl", b"x", "application/octet-stream")}
    problem = _problem(api.call("POST", "/releases", api.paul, files=files), 400, "invalid-input")
    assert (problem["field"], problem["detail"]) == ("wheel", "wheel: is required")


UPLOAD_FORM = (
    "send the wheel as multipart/form-data: the .whl file in the field `wheel` and, optionally, the "
    "publisher's id in `publisher`"
)


@pytest.mark.parametrize(
    ("sent", "named"),
    [
        ({"data": {"wheel": "x.whl", "publisher": "test-bank"}}, "not application/x-www-form-urlencoded"),
        ({"json": {"wheel": "x.whl"}}, "not application/json"),
        ({"content": b"x.whl"}, "the request has no Content-Type"),
    ],
)
def test_a_submission_not_sent_as_multipart_says_what_to_send(
    api: Api, sent: dict[str, Any], named: str
) -> None:
    """A form-encoded (or JSON) submission said only "Invalid multipart/form-data": it is the catalogue's
    415 naming ``Content-Type``, the form expected, its fields and what was sent."""
    problem = _problem(api.call("POST", "/releases", api.paul, **sent), 415, "unsupported-media-type")
    assert (problem["field"], problem["detail"]) == ("Content-Type", f"{UPLOAD_FORM}; {named}")


def test_a_multipart_submission_without_its_boundary_says_so(api: Api) -> None:
    """``multipart/form-data`` without its ``boundary`` cannot be split into parts: a 400 naming it."""
    headers = {"Content-Type": "multipart/form-data"}
    problem = _problem(api.call("POST", "/releases", api.paul, content=b"x", headers=headers), 400)
    assert problem["field"] == "Content-Type"
    assert "boundary" in problem["detail"]


_WHEEL_PART = (
    b'--xyz\r\nContent-Disposition: form-data; name="wheel"; filename="fulcrum_x-1.0-py3-none-any.whl"\r\n'
    b"Content-Type: application/zip\r\n\r\nPK"
)


@pytest.mark.parametrize(
    "body",
    [_WHEEL_PART, _WHEEL_PART + b"\r\n--xyz", _WHEEL_PART + b"\r\n--xyz\r\n", b"PK: no part at all",
     b'--xyz\r\nContent-Disposition: form-data; name="wheel"'],
    ids=["cut-in-the-file", "cut-at-the-boundary", "cut-after-a-boundary", "no-boundary", "cut-in-a-header"],
)
def test_a_multipart_body_without_its_closing_boundary_is_a_400_naming_the_body(
    api: Api, body: bytes
) -> None:
    """An upload cut short (a dropped connection, a proxy's limit) or built with another boundary than
    its Content-Type names was litestar's bare "Invalid multipart/form-data": it is a 400 naming
    ``body`` and saying the closing boundary never came, and nothing is filed."""
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    sent = api.call("POST", "/releases", api.paul, content=body, headers=headers)
    problem = _problem(sent, 400, "invalid-input")
    assert problem["field"] == "body"
    assert "ends before its closing boundary '--xyz--'" in problem["detail"], problem["detail"]
    assert api.call("GET", "/releases", api.rita).json()["total"] == 0


def test_a_multipart_part_with_a_malformed_header_is_a_400_naming_the_body(api: Api) -> None:
    """A part whose header section cannot be read is named as such, in the parser's words."""
    body = b"--xyz\r\nnot a header\r\n\r\nPK\r\n--xyz--\r\n"
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    problem = _problem(api.call("POST", "/releases", api.paul, content=body, headers=headers), 400)
    assert problem["field"] == "body"
    assert problem["detail"] == (
        "the multipart/form-data body cannot be split into its parts (malformed segment header): send it "
        "as an HTTP client builds the form"
    )


def test_a_release_view_warns_of_the_templates_placeholder_description(
    api: Api, manifest: Any, wheel_for: Callable[..., Path]
) -> None:
    """Submitting and reading a release still carrying the template's placeholder description: it is
    in review (no check fails) and its view lists a warning naming the key; written text lists none."""
    from fulcrum_registry.placeholders import TEMPLATE_PLACEHOLDERS
    from fulcrum_sdk.models import LocalizedText

    zh = TEMPLATE_PLACEHOLDERS["description.zh-CN"]
    baked = msgspec.structs.replace(manifest, description=LocalizedText(zh_CN=zh, en="Shows notices"))
    submitted = api.submit(wheel_for(baked))
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["release"]["state"] == "in_review"
    assert [w.split(" ")[0] for w in submitted.json()["warnings"]] == ["description.zh-CN"]
    release_id = submitted.json()["release"]["id"]
    shown = api.call("GET", f"/releases/{release_id}", api.rita).json()
    assert shown["warnings"] == submitted.json()["warnings"]
    assert zh in shown["warnings"][0]
    written = api.submit(wheel_for(msgspec.structs.replace(manifest, version="1.0.1"), "1.0.1"))
    assert written.json()["warnings"] == []


def test_suspending_a_publisher_over_http_stops_its_submissions_and_is_audited(
    api: Api, manifest: Any, wheel_for: Callable[..., Path]
) -> None:
    """A reviewer suspends test-bank: its submit is 403 naming why, a second suspend 409, then reinstate."""
    body = {"reason": "contract under review"}
    _problem(api.call("POST", "/publishers/test-bank/suspend", api.paul, json=body), 403)
    done = api.call("POST", "/publishers/test-bank/suspend", api.rita, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["suspended"] is True
    refused = _problem(api.submit(wheel_for(manifest)), 403, "registry.publisher-suspended")
    assert "test-bank" in refused["detail"]
    _problem(api.call("POST", "/publishers/test-bank/suspend", api.rita, json=body), 409, "registry.conflict")
    blank = _problem(api.call("POST", "/publishers/test-bank/reinstate", api.rita, json={"reason": ""}), 400)
    assert blank["detail"] == f"reason: {BLANK_REASON}"
    _problem(api.call("POST", "/publishers/nobody/suspend", api.rita, json=body), 404, "registry.not-found")
    back = api.call("POST", "/publishers/test-bank/reinstate", api.rob, json={"reason": "cleared"})
    assert back.status_code == 200, back.text
    assert back.json()["suspended"] is False
    assert api.submit(wheel_for(manifest)).status_code == 201
    events = api.call("GET", "/audit?subject=publisher:test-bank", api.rita).json()["items"]
    assert [(e["action"], e["actor"]) for e in events[-2:]] == [
        ("publisher.suspended", "rita"),
        ("publisher.reinstated", "rob"),
    ]


def test_a_staff_tools_own_token_cannot_be_a_reviewer(
    api: Api, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A staff tool (a client with registry:review getting its own tokens by client_credentials) may
    read and pull the kill switch, but approving, rejecting, resuming and reinstating are 403
    ``registry.not-a-person``: else one person holding the tool's secret would be the second reviewer."""
    from fulcrum_core.oauth.clients import ClientStore

    secret = ClientStore(api.runtime.db).register(
        "review-bot", kind="staff", name_zh="审核工具", auth_method="client_secret_basic",
        grant_types=["client_credentials"], scopes=["registry:review"],
    )
    assert secret is not None
    grant = {"grant_type": "client_credentials"}
    issued = api.client.post("/oauth/token", data=grant, auth=("review-bot", secret))
    assert issued.status_code == 200, issued.text
    bot = issued.json()["access_token"]
    high = ["slot:home.notice", "pension:read"]
    manifest = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=high)
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    assert api.approve(release_id, api.rita).json()["release"]["state"] == "in_review"  # one of two
    refused = _problem(api.approve(release_id, bot), 403, "registry.not-a-person")
    assert "review-bot" in refused["detail"]
    rejected = {"decision": "reject", "reasons": ["no"], "checklist": CHECKLIST}
    review = f"/releases/{release_id}/review"
    _problem(api.call("POST", review, bot, json=rejected), 403, "registry.not-a-person")
    assert api.call("GET", f"/releases/{release_id}", bot).json()["release"]["approvals"] == ["rita"]
    assert api.approve(release_id, api.rob).json()["release"]["state"] == "approved"

    suspended = api.call("POST", f"/releases/{release_id}/suspend", bot, json={"reason": "alert 7"})
    assert suspended.status_code == 200, suspended.text
    resume = api.call("POST", f"/releases/{release_id}/resume", bot, json={"reason": "cleared"})
    _problem(resume, 403, "registry.not-a-person")
    pulled = api.call("POST", "/publishers/test-bank/suspend", bot, json={"reason": "alert 8"})
    assert pulled.status_code == 200
    back = api.call("POST", "/publishers/test-bank/reinstate", bot, json={"reason": "cleared"})
    _problem(back, 403, "registry.not-a-person")
    assert api.call("GET", "/publishers/test-bank", api.rita).json()["pending_reinstatement"] is None


def test_a_subject_the_registry_cannot_record_is_refused_naming_the_subject(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """A token whose subject is over 200 characters (the registry records who acts in at most 200):
    every write, and ``waiting=me``, is a 403 ``registry.unusable-subject`` about the token's subject,
    not a 422 naming ``reviewer``, ``actor`` or ``submitted_by`` (fields the client never sent), and
    nothing is written."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    long = staff(api.runtime, "r" * 201, "registry:review")
    publisher = staff(api.runtime, "p" * 201, "registry:publish", publisher="test-bank")
    head = api.call("GET", "/audit", api.rita).json()["head"]
    rejected = {"decision": "reject", "reasons": ["no"]}
    refusals = [
        api.approve(release_id, long),
        api.call("POST", f"/releases/{release_id}/review", long, json=rejected),
        api.call("POST", f"/releases/{release_id}/suspend", long, json={"reason": "x"}),
        api.call("POST", f"/releases/{release_id}/resume", long, json={"reason": "x"}),
        api.call("POST", "/publishers/test-bank/suspend", long, json={"reason": "x"}),
        api.call("POST", "/publishers/test-bank/reinstate", long, json={"reason": "x"}),
        api.call("POST", "/publishers", long, json={**PUBLISHER, "id": "other-bank"}),
        api.call("GET", "/releases", long, params={"waiting": "me"}),
        api.call("GET", "/publishers", long, params={"waiting": "me"}),
        api.submit(wheel_for(manifest, "1.0.1"), publisher),
    ]
    for response in refusals:
        problem = _problem(response, 403, "registry.unusable-subject")
        assert "field" not in problem, problem
        assert problem["detail"].startswith("the access token's subject '"), problem
        assert "r" * 65 not in problem["detail"]  # echoed cut short, not in full
        assert "p" * 65 not in problem["detail"]
        assert "(201 characters) is over the 200 characters the registry records of who acts" in problem[
            "detail"
        ]
    assert api.call("GET", "/audit", api.rita).json()["head"] == head
    assert api.call("GET", "/releases", long).json()["total"] == 1  # reading needs no name recorded
    assert api.approve(release_id, staff(api.runtime, "r" * 200, "registry:review")).status_code == 200


def test_publishers_are_paged_as_releases_are(api: Api) -> None:
    """``GET /publishers`` takes ``cursor`` and ``limit`` and answers ``next_cursor`` and ``total``, as
    ``GET /releases`` does; the default page (20) holds every publisher of a small registry."""
    for pid in ("bank-a", "bank-b"):
        created = api.call("POST", "/publishers", api.rita, json={**PUBLISHER, "id": pid})
        assert created.status_code == 201, created.text
    whole = api.call("GET", "/publishers", api.paul).json()
    assert ([p["id"] for p in whole["items"]], whole["next_cursor"], whole["total"]) == (
        ["bank-a", "bank-b", "test-bank"], None, 3
    )
    ids, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/publishers", api.rita, params=params).json()
        assert page["total"] == 3
        ids.append([p["id"] for p in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [["bank-a", "bank-b"], ["test-bank"]]


def test_an_empty_name_is_refused_as_empty_not_as_too_few_characters(api: Api) -> None:
    """An empty ``name`` was "must be at least 1 characters"; a one-character bound reads as English."""
    sent = {"id": "ab-zz", "name": "", "kind": "partner", "contact": "a@b.example.com"}
    refused = _problem(api.call("POST", "/publishers", api.rita, json=sent), 400)
    assert (refused["field"], refused["detail"]) == ("name", "name: must not be empty")


@pytest.mark.parametrize(
    ("content_type", "status", "named"),
    [
        ("application/json; charset=latin-1", 415, "charset 'latin-1'"),
        ("application/json; charset=utf-16", 415, "charset 'utf-16'"),
        ("text/plain", 415, "not text/plain"),
        (None, 415, "not no Content-Type"),
        ("application/json; charset=utf-8", 201, None),
        ('application/json; charset="UTF-8"', 201, None),
        ("application/json", 201, None),
    ],
)
def test_a_json_body_is_read_only_when_declared_json_in_utf8(
    make_app: Callable[..., Any], staff: Callable[..., str], content_type: str | None, status: int,
    named: str | None,
) -> None:
    """A registry body declared in another charset, or as another media type, is a 415 naming what was
    sent and ``Content-Type``: it was read as UTF-8 JSON whatever it was declared as (JSON is UTF-8,
    RFC 8259 section 8.1)."""
    api = Api(make_app(), staff)
    body = msgspec.json.encode({**PUBLISHER, "name": "Café bank"})
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.call("POST", "/publishers", api.rita, content=body, headers=headers)
    assert response.status_code == status, response.text
    if named is not None:
        problem = _problem(response, 415, "unsupported-media-type")
        assert problem["field"] == "Content-Type"
        assert named in problem["detail"], problem["detail"]
    else:
        assert response.json()["name"] == "Café bank"


@pytest.mark.parametrize(
    "charset", ["latin-1", '"ISO-8859-1"', "iso-8859-1", "US-ASCII", "windows-1252", "utf-8; charset=latin1"]
)
def test_an_ascii_json_body_declared_in_an_ascii_compatible_charset_is_read(
    make_app: Callable[..., Any], staff: Callable[..., str], charset: str
) -> None:
    """A JSON body whose bytes are all ASCII (``\\u00e9`` escapes included) reads the same in UTF-8 as in
    ISO-8859-1 and its kin: it is read, as an OAuth form declared so is, not refused for a charset that
    changes nothing."""
    api = Api(make_app(), staff)
    body = json.dumps({**PUBLISHER, "name": "Café bank"}, ensure_ascii=True).encode("ascii")
    headers = {"Content-Type": f"application/json; charset={charset}"}
    response = api.call("POST", "/publishers", api.rita, content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Café bank"


def test_a_review_body_in_another_charset_is_415(api: Api) -> None:
    """The review, kill-switch and retirement bodies are refused alike."""
    for action in ("review", "suspend", "resume", "retire"):
        response = api.call(
            "POST", f"/releases/1/{action}", api.rita, content=b'{"reason": "caf\xe9"}',
            headers={"Content-Type": "application/json; charset=latin-1"},
        )
        assert _problem(response, 415, "unsupported-media-type")["field"] == "Content-Type", action


@pytest.mark.parametrize(
    "sent",
    ["1_0", "+1", "%201", "1%20", "%D9%A5", "%EF%BC%91", "1.0", "1e0", "0x1", "-0", "01", "abc", "0",
     "2147483648", "9" * 5000],
    ids=["underscore", "plus", "space", "trailing-space", "arabic-indic", "fullwidth", "decimal", "exponent",
         "hex", "minus-zero", "leading-zero", "letters", "zero", "past-32-bits", "5000-digits"],
)
@pytest.mark.parametrize("action", ["", "/review", "/suspend", "/resume", "/retire"])
def test_a_release_id_is_ascii_digits_within_range_or_a_400_naming_it(
    api: Api, sent: str, action: str
) -> None:
    """A release id is written in ASCII digits, 1 to 2147483647: ``1_0`` was release 10, `` 1``, ``+1``
    and ``٥`` (an Arabic-Indic five) were releases too, and ``abc`` a 404 saying no route answers. Any
    other spelling is a 400 naming ``release_id`` and quoting what was sent, before the body is read."""
    method = "POST" if action else "GET"
    response = api.call(method, f"/releases/{sent}{action}", api.rita, json={})
    problem = _problem(response, 400, "invalid-input")
    assert problem["field"] == "release_id", problem
    assert "is not an integer from 1 to 2147483647" in problem["detail"], problem["detail"]


def test_a_well_formed_release_id_of_no_release_is_404(api: Api) -> None:
    """Digits naming no release are a 404 for that release (a malformed id is the client's 400)."""
    problem = _problem(api.call("GET", "/releases/2147483647", api.rita), 404, "registry.not-found")
    assert "2147483647" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/releases?limit=1e1", "limit"), ("/releases?limit=1.0", "limit"), ("/releases?limit=%D9%A5", "limit"),
     ("/releases?limit=%2B5", "limit"), ("/publishers?limit=10.0", "limit"), ("/plugins?limit=2e0", "limit"),
     ("/audit?after=0.0", "after"), ("/audit?limit=1e2", "limit"), ("/audit?after=1_0", "after")],
)
def test_an_integer_query_parameter_is_ascii_digits_or_a_400(api: Api, path: str, field: str) -> None:
    """``?limit=1e1`` was read as 10 and ``?limit=1.0`` as 1: an integer is sent in ASCII digits."""
    problem = _problem(api.call("GET", path, api.rita), 400, "invalid-input")
    assert problem["field"] == field, problem


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("review", {"decision": "approve"}),  # no checklist
        ("review", {"decision": "approve", "checklist": {"data_minimised": False}}),
        ("review", {"decision": "reject"}),  # no reason
        ("review", {"decision": "reject", "reasons": ["r"], "grant": []}),
    ],
    ids=["approve-without-checklist", "approve-unconfirmed", "reject-without-reason", "reject-with-grant"],
)
def test_a_missing_release_is_404_before_the_decisions_rules(api: Api, action: str, body: Any) -> None:
    """A well-formed decision the rules refuse (422) for a release that does not exist is its 404, as a
    kill switch's body is: the order is the body's shape (400), the release (404), then the rules (422)."""
    _problem(api.call("POST", f"/releases/9999/{action}", api.rita, json=body), 404, "registry.not-found")


@pytest.mark.parametrize("action", ["review", "suspend", "resume", "retire"])
def test_a_malformed_body_is_400_before_the_missing_release(api: Api, action: str) -> None:
    """A body of the wrong shape is a 400 naming its field before the release is looked up, on each
    route alike."""
    problem = _problem(api.call("POST", f"/releases/9999/{action}", api.rita, json={}), 400, "invalid-input")
    assert problem["field"] == ("decision" if action == "review" else "reason")


def test_an_existing_release_still_has_its_decision_judged(
    api: Api, manifest: Any, wheel_for: Callable[..., Path]
) -> None:
    """For a release in review the same bodies are the 422s naming the field they always were."""
    release = api.submit(wheel_for(manifest)).json()["release"]["id"]
    path = f"/releases/{release}/review"
    problem = _problem(api.call("POST", path, api.rita, json={"decision": "approve"}), 422)
    assert problem["field"].startswith("checklist.")
    problem = _problem(api.call("POST", path, api.rita, json={"decision": "reject"}), 422)
    assert problem["field"] == "reasons"
    body = {"decision": "reject", "reasons": ["r"], "grant": []}
    assert _problem(api.call("POST", path, api.rita, json=body), 422)["field"] == "grant"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"id": "dup-bank", "id": "dup-bank-2", "name": "x", "kind": "partner", "contact": "a@b"}', "id"),
        (b'{"id": "n-bank", "name": "x", "kind": "department", "contact": "a@b", "name": "y"}', "name"),
    ],
)
def test_a_member_named_twice_is_a_400_naming_it(api: Api, raw: bytes, field: str) -> None:
    """``{"id": "dup-bank", "id": "dup-bank-2"}`` created ``dup-bank-2`` (the last value won, where
    another reader takes the first): a body names each member once, as a transaction's must."""
    json_type = {"Content-Type": "application/json"}
    response = api.call("POST", "/publishers", api.rita, content=raw, headers=json_type)
    problem = _problem(response, 400, "invalid-input")
    assert problem["field"] == field
    assert "twice" in problem["detail"]
    assert api.call("GET", "/publishers/dup-bank-2", api.rita).status_code == 404


@pytest.mark.parametrize("confirmed", ["true", 1, "1", 1.0])
def test_a_checklist_item_is_confirmed_only_by_true(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], confirmed: Any
) -> None:
    """``"true"``, ``1`` and ``"1"`` counted as a confirmed checklist item (litestar reads bodies laxly):
    an approval is confirmed by JSON ``true`` alone, or the 400 names the checklist."""
    release = api.submit(wheel_for(manifest)).json()["release"]["id"]
    checklist = {**CHECKLIST, "data_minimised": confirmed}
    body = {"decision": "approve", "checklist": checklist}
    response = api.call("POST", f"/releases/{release}/review", api.rita, json=body)
    problem = _problem(response, 400, "invalid-input")
    assert (problem["field"], problem["detail"]) == (
        "checklist.data_minimised", "checklist.data_minimised: must be true or false"
    )
    assert api.call("GET", f"/releases/{release}", api.rita).json()["release"]["state"] == "in_review"



def test_a_registry_body_with_a_content_coding_is_415(api: Api) -> None:
    """A registry body declared ``gzip`` is a 415 naming ``Content-Encoding``, not created as sent."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = msgspec.json.encode(PUBLISHER)
    response = api.call("POST", "/publishers", api.rita, content=body, headers=headers)
    assert _problem(response, 415, "unsupported-media-type")["field"] == "Content-Encoding"


def test_a_subject_that_would_read_reversed_is_refused_and_nothing_is_written(
    api: Api, manifest: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """Who acts is shown to the publisher (``rejected by …``) and in the audit: a subject holding a
    bidi override is a 403 ``registry.unusable-subject`` naming the character, escaped, and the audit is
    unchanged."""
    release_id = api.submit(wheel_for(manifest)).json()["release"]["id"]
    spoof = staff(api.runtime, "rita\u202etob", "registry:review")
    head = api.call("GET", "/audit", api.rita).json()["head"]
    rejected = {"decision": "reject", "reasons": ["no"]}
    response = api.call("POST", f"/releases/{release_id}/review", spoof, json=rejected)
    refused = _problem(response, 403, "registry.unusable-subject")
    assert refused["detail"].startswith(
        "the access token's subject 'rita\\u202etob' holds U+202E RIGHT-TO-LEFT OVERRIDE at index 4"
    ), refused
    assert "\u202e" not in refused["detail"]
    assert api.call("GET", "/audit", api.rita).json()["head"] == head


@pytest.mark.parametrize(
    ("part_headers", "value"),
    [(b"", b"\xff\xfe"), (b"Content-Type: text/plain; charset=no-such-charset\r\n", b"test-bank")],
    ids=["not-utf8", "unknown-charset"],
)
def test_a_form_text_field_that_cannot_be_decoded_is_a_400(
    api: Api, part_headers: bytes, value: bytes
) -> None:
    """A ``publisher`` part of bytes that are not UTF-8, or declared in a charset that does not exist, was
    a 500 (litestar decodes each text part); it is a 400 saying what to send, and nothing is filed."""
    wheel = b'name="wheel"; filename="fulcrum_x-1.0-py3-none-any.whl"\r\nContent-Type: application/zip'
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="publisher"\r\n' + part_headers + b"\r\n" + value
        + b"\r\n--xyz\r\nContent-Disposition: form-data; " + wheel + b"\r\n\r\nPK\r\n--xyz--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    sent = api.call("POST", "/releases", api.paul, content=body, headers=headers)
    problem = _problem(sent, 400, "invalid-input")
    assert "not UTF-8 text" in problem["detail"]
    assert api.call("GET", "/releases", api.rita).json()["total"] == 0
