"""``/registry/v1/...``: publishers submit wheels, the platform team reviews, suspends and audits.

Handlers only check who acts (``registry_access``) and pass the call to ``RegistryService``; every
rule (checks, four eyes, grants, transitions) lives in the registry library, and its errors become
problem details in ``registry_errors``. The acting person is always the token's subject.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fulcrum_registry import InvalidInput, NewPublisher, PublisherRead, RegistryService, ReleaseRead
from fulcrum_registry.placeholders import placeholder_warnings
from fulcrum_registry.schemas import (
    KNOWN_SLUG_PATTERN,
    KNOWN_SLUG_WORDS,
    RELEASE_CURSOR_PATTERN,
    PublisherKind,
    StateName,
)
from fulcrum_registry.service import DEFAULT_MAX_ARTIFACT_BYTES
from fulcrum_registry.workflow import MAX_NAME, name_problem
from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromQuery, JSONBody, PathParameter, QueryParameter

from fulcrum_core.api.input_problems import PROBLEM_MEDIA_TYPE, InputProblem
from fulcrum_core.api.query_text import checked_query
from fulcrum_core.api.registry_access import (
    PUBLISH,
    REVIEW,
    acting_publisher,
    is_reviewer,
    own_publisher,
    staff_guard,
)
from fulcrum_core.api.registry_errors import registry_errors, translate
from fulcrum_core.api.registry_models import (
    AuditHead,
    AuditList,
    AuditVerdict,
    PluginList,
    PublisherList,
    ReasonBody,
    ReleaseList,
    ReleaseView,
    ReviewBody,
    WheelUpload,
)
from fulcrum_core.errors import BadRequest, Forbidden, UnsupportedMediaType
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.registry_host import registry_of
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES"]

_ANY_STAFF: dict[str, Any] = {"scopes": []}
_REVIEW: dict[str, Any] = {"scopes": [REVIEW]}
_BASE = "/registry/v1"
_PUBLISH: dict[str, Any] = {"scopes": [PUBLISH]}
_UPLOAD_LIMIT = DEFAULT_MAX_ARTIFACT_BYTES + 1024 * 1024  # the wheel plus the multipart framing
_MAX_ID = 2**31 - 1  # ids are 32-bit integers on every backend; larger ones cannot exist
ReleaseId = Annotated[int, PathParameter(ge=1, le=_MAX_ID)]
PublisherId = Annotated[str, PathParameter(max_length=50)]
# Filters carry the registry query's own constraints, so litestar refuses a bad one as a 400 naming
# the parameter and the value (parameter_problems) before the registry would answer 422.
Cursor = Annotated[str | None, QueryParameter(max_length=100)]
ReleaseCursor = Annotated[
    str | None,
    QueryParameter(
        pattern=RELEASE_CURSOR_PATTERN, description="a release id: the next_cursor of the previous page"
    ),
]
SlugFilter = Annotated[
    str | None, QueryParameter(pattern=KNOWN_SLUG_PATTERN, description=KNOWN_SLUG_WORDS)
]
PublisherCursor = Annotated[
    str | None,
    QueryParameter(
        pattern=KNOWN_SLUG_PATTERN, description="a publisher id: the next_cursor of the previous page"
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Waiting = Annotated[
    Literal["anyone", "me"] | None,
    QueryParameter(
        description="only what waits for one more reviewer (a second approval, a second agreement to "
        "resume or reinstate): `anyone`, or `me`, only what the token's subject may complete (not their "
        "own submission, not a switch they pulled, not one they approved or agreed to already)"
    ),
]


def _service(request: Request[Any, Any, Any]) -> RegistryService:
    return registry_of(runtime_of(request)).service


def _actor(request: Request[Any, Any, Any]) -> str:
    """The token's subject, who acts; 403 ``registry.unusable-subject`` when the registry cannot record
    it as who acts (blank, NUL, over 200 characters): the client sent no field the registry could name."""
    subject = str(request.user.sub)
    problem = name_problem(subject)
    if problem is not None:
        raise Forbidden(
            f"the access token's subject {echoed(subject)} {problem}: nothing is done as a subject the "
            f"registry cannot record; use a token issued to a subject of 1 to {MAX_NAME} characters",
            code="registry.unusable-subject",
        )
    return subject


def _person(request: Request[Any, Any, Any]) -> str:
    """The token's subject for a decision four eyes may count (approve, reject, resume, reinstate): a
    staff tool's own token (client credentials, its subject the client id) is refused, or one person
    holding a tool's secret would be a second reviewer. Suspending and retiring stay open to tools."""
    user, subject = request.user, _actor(request)
    if user.sub == user.client_id:
        raise Forbidden(
            f"{user.sub} is a staff tool's own token (client credentials): approving, rejecting, resuming "
            "and reinstating name a person; use a token issued to the reviewer",
            code="registry.not-a-person",
        )
    return subject


def _check_visible(request: Request[Any, Any, Any], release: ReleaseRead) -> None:
    """Reviewers see every release; a publisher only its own."""
    if not is_reviewer(request) and release.publisher_id != own_publisher(request):
        raise Forbidden(f"release {release.id} belongs to another publisher", code="registry.other-publisher")


_SENT_AS = {"text": "q"}
"""Registry query fields a client sends under another parameter name."""


def _filters(query: dict[str, Any]) -> dict[str, Any]:
    """The filters given, refusing NUL characters (PostgreSQL cannot compare text holding them)."""
    for name, value in query.items():
        if isinstance(value, str) and "\x00" in value:
            raise translate(InvalidInput(_SENT_AS.get(name, name), "must not contain NUL characters"))
    return {k: v for k, v in query.items() if v is not None}


def _waiting(request: Request[Any, Any, Any], waiting: str | None) -> dict[str, Any]:
    """The registry's filters for ``waiting``; ``me`` is the token's subject, who must be a reviewer."""
    if waiting is None:
        return {}
    if waiting == "anyone":
        return {"waiting": True}
    if not is_reviewer(request):
        raise Forbidden(
            f"waiting=me lists what you may complete as a reviewer: the access token lacks {REVIEW}",
            code="scope.insufficient",
            missing_scopes=[REVIEW],
            field="waiting",
        )
    return {"waiting": True, "reviewer": _actor(request)}


def _view(service: RegistryService, release: ReleaseRead) -> ReleaseView:
    try:
        diff = service.diff(release.id)
    except InvalidInput:  # a release whose checks failed may have no manifest to compare
        diff = None
    return ReleaseView(release=release, diff=diff, warnings=list(placeholder_warnings(release.manifest)))


# -- publishers ------------------------------------------------------------------------------------


@get("/publishers", opt=_ANY_STAFF, sync_to_thread=True, summary="List publishers")
def list_publishers(
    request: Request[Any, Any, Any],
    waiting: Waiting = None,
    cursor: PublisherCursor = None,
    limit: Limit = 20,
) -> PublisherList:
    """Publishers by id, a page at a time as releases are; with ``waiting``, the suspended ones one more
    agreement reinstates (``me``: that the token's subject may complete)."""
    query = {"cursor": cursor, "limit": limit, **_waiting(request, waiting)}
    with registry_errors():
        page = _service(request).list_publishers(_filters(query))
    return PublisherList(items=list(page.items), next_cursor=page.next_cursor, total=page.total)


@get("/publishers/{publisher_id:str}", opt=_ANY_STAFF, sync_to_thread=True, summary="One publisher")
def get_publisher(request: Request[Any, Any, Any], publisher_id: PublisherId) -> PublisherRead:
    """The publisher; when suspended and agreed to reinstate by fewer people than needed,
    ``pending_reinstatement`` says who agreed and how many must."""
    _filters({"publisher_id": publisher_id})  # NUL cannot name a row; refuse it naming the field
    with registry_errors():
        return _service(request).get_publisher(publisher_id)


@post("/publishers", opt=_REVIEW, sync_to_thread=True, summary="Create a publisher")
def create_publisher(request: Request[Any, Any, Any], data: JSONBody[NewPublisher]) -> PublisherRead:
    """Create a publisher (platform team only); 409 when the id is taken."""
    with registry_errors():
        return _service(request).create_publisher(data, actor=_actor(request))


def _switch_publisher(
    request: Request[Any, Any, Any], publisher_id: str, suspend: bool, reason: str
) -> PublisherRead:
    """Suspend or reinstate, acting as the token's subject."""
    _filters({"publisher_id": publisher_id})  # NUL cannot name a row; refuse it naming the field
    service = _service(request)
    with registry_errors():
        if suspend:
            return service.suspend_publisher(publisher_id, actor=_actor(request), reason=reason)
        return service.reinstate_publisher(publisher_id, actor=_person(request), reason=reason)


@post(
    "/publishers/{publisher_id:str}/suspend",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Suspend a publisher (kill switch for all its plugins)",
)
def suspend_publisher(
    request: Request[Any, Any, Any], publisher_id: PublisherId, data: JSONBody[ReasonBody]
) -> PublisherRead:
    """Every host stops the publisher's plugins on its next poll; it cannot submit; 409 if already."""
    return _switch_publisher(request, publisher_id, True, data.reason)


@post(
    "/publishers/{publisher_id:str}/reinstate",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Reinstate a suspended publisher",
)
def reinstate_publisher(
    request: Request[Any, Any, Any], publisher_id: PublisherId, data: JSONBody[ReasonBody]
) -> PublisherRead:
    """Its approved releases run again with the grants they had; 409 when it is not suspended.

    Four eyes: 403 ``registry.four-eyes`` for one of its submitters, for who suspended it, or for
    agreeing twice; when an approved release of its requests a high-sensitivity scope the first
    agreement is recorded and ``suspended`` stays true until a second reviewer reinstates it;
    meanwhile ``pending_reinstatement`` names who agreed.
    """
    return _switch_publisher(request, publisher_id, False, data.reason)


# -- catalogue -------------------------------------------------------------------------------------


@get("/plugins", opt=_ANY_STAFF, sync_to_thread=True, summary="Search the plugin catalogue")
def catalogue(
    request: Request[Any, Any, Any],
    q: Annotated[str | None, QueryParameter(min_length=1, max_length=100)] = None,
    publisher: SlugFilter = None,
    kind: FromQuery[PublisherKind | None] = None,
    scope_name: Annotated[str | None, QueryParameter(name="scope", min_length=1, max_length=64)] = None,
    release_state: Annotated[StateName | None, QueryParameter(name="state")] = None,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> PluginList:
    """Plugins matching every filter given (``q`` matches id or name), a page at a time."""
    query = {
        "text": q,
        "publisher": publisher,
        "kind": kind,
        "scope": scope_name,
        "state": release_state,
        "cursor": cursor,
        "limit": limit,
    }
    with registry_errors():
        page = _service(request).catalogue(_filters(query))
    return PluginList(items=list(page.items), next_cursor=page.next_cursor, total=page.total)


# -- releases --------------------------------------------------------------------------------------


_UPLOAD_FORM = (
    "multipart/form-data: the .whl file in the field `wheel` and, optionally, the publisher's id in "
    "`publisher`"
)
"""What ``POST /releases`` reads, in words for a refusal."""


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _unsplit(exc: ClientException, boundary: str) -> ClientException | BadRequest:
    """The 400 naming ``body`` for a multipart body litestar's parser could not split into its parts
    (``exc``, with the parser's error as its cause), saying why; litestar's own refusal for anything
    else (too many parts)."""
    args = exc.__cause__.args if exc.__cause__ is not None else ()
    cause = str(args[0]) if args else ""  # a decoding failure comes as (words, the UnicodeDecodeError)
    if cause.startswith("Unexpected end of multipart stream") or exc.detail.startswith("Unexpected eof"):
        # A dropped connection or a proxy's limit cuts an upload short; a form built with another
        # boundary than its Content-Type names never meets it either.
        problem = (
            f"ends before its closing boundary {echoed(f'--{boundary}--', 80)}: it was cut short, or its "
            f"parts are not separated by the boundary the Content-Type names ({echoed(boundary, 80)})"
        )
    elif exc.__cause__ is not None:
        said = cause[:1].lower() + cause[1:] if cause else "malformed"
        problem = f"cannot be split into its parts ({said}): send it as an HTTP client builds the form"
    else:
        return exc
    return BadRequest(f"the multipart/form-data body {problem}", code="invalid-input", field="body")


async def _multipart_first(request: Request[Any, Any, Any]) -> None:
    """Before litestar reads the upload, refuse a body not sent as multipart form data (a 415 saying what
    to send), sent without the boundary that separates its parts, or one that cannot be split into its
    parts (:func:`_unsplit`): litestar answered each with only "Invalid multipart/form-data"."""
    media = _media_type(request)
    if media != RequestEncodingType.MULTI_PART:
        sent = f"not {media}" if media else "the request has no Content-Type"
        raise UnsupportedMediaType(f"send the wheel as {_UPLOAD_FORM}; {sent}", field="Content-Type")
    boundary = request.content_type[1].get("boundary")
    if not boundary:
        raise BadRequest(
            "a multipart/form-data body needs the Content-Type's boundary parameter (an HTTP client "
            "sets it when it builds the form)",
            code="invalid-input", field="Content-Type",
        )
    # A field sent twice reached WheelUpload as a list, refused as no file or no text at all; the form
    # read here is kept for the handler's own (litestar reads it once a request).
    try:
        form = await request.form()
    except ClientException as exc:
        raise _unsplit(exc, boundary) from None
    except (UnicodeDecodeError, LookupError):  # litestar decodes each text part, by its charset: a 500
        raise BadRequest(
            "a text field of the form (the publisher's id) is not UTF-8 text, or names a charset that does "
            "not exist: send it as UTF-8 text",
            code="invalid-input", field="body",
        ) from None
    for name in dataclasses.fields(WheelUpload):
        if (times := len(form.getall(name.name, []))) > 1:
            raise BadRequest(
                f"{name.name}: is sent {times} times; send it once", code="invalid-input", field=name.name
            )


@post(
    "/releases",
    opt=_PUBLISH,
    sync_to_thread=True,
    status_code=201,
    request_max_body_size=_UPLOAD_LIMIT,
    before_request=_multipart_first,
    responses={
        200: ResponseSpec(
            data_container=ReleaseView, generate_examples=False,
            description="This publisher sent this identical wheel before (a retry): the release it filed "
            "then, unchanged; Location names it",
        ),
        415: ResponseSpec(
            data_container=InputProblem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
            description=f"The body is not {_UPLOAD_FORM}",
        ),
    },
    summary="Submit a wheel",
)
def submit_release(
    request: Request[Any, Any, Any],
    data: Annotated[WheelUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Response[ReleaseView]:
    """Store the wheel, run every check; the release is ``in_review`` or ``checks_failed`` (both 201).
    The identical wheel again from its publisher (a retry after a lost answer) files nothing: 200 with
    the release it filed. Location names the release either way."""
    publisher = acting_publisher(request, data.publisher or None)
    if not data.wheel.filename:
        raise translate(InvalidInput("wheel", "the upload has no file name"))
    wheel = data.wheel.file.read()
    service = _service(request)
    with registry_errors():
        submitted = service.submission(
            wheel, filename=data.wheel.filename, publisher_id=publisher, submitted_by=_actor(request)
        )
        return Response(
            _view(service, submitted.release),
            status_code=201 if submitted.created else 200,
            headers={"Location": f"{_BASE}/releases/{submitted.release.id}"},
        )


@get("/releases", opt=_ANY_STAFF, sync_to_thread=True, summary="List releases (the review queue)")
def list_releases(
    request: Request[Any, Any, Any],
    plugin: SlugFilter = None,
    publisher: SlugFilter = None,
    release_state: Annotated[StateName | None, QueryParameter(name="state")] = None,
    waiting: Waiting = None,
    cursor: ReleaseCursor = None,
    limit: Limit = 20,
) -> ReleaseList:
    """Releases oldest first; a publisher's token sees only that publisher's releases. ``waiting``:
    only those one more reviewer completes (``me``: that the token's subject may complete)."""
    if not is_reviewer(request):
        publisher = acting_publisher(request, publisher)
    query = {
        "plugin": plugin,
        "publisher": publisher,
        "state": release_state,
        "cursor": cursor,
        "limit": limit,
        **_waiting(request, waiting),
    }
    with registry_errors():
        page = _service(request).list_releases(_filters(query))
    return ReleaseList(items=list(page.items), next_cursor=page.next_cursor, total=page.total)


@get("/releases/{release_id:str}", opt=_ANY_STAFF, sync_to_thread=True, summary="One release")
def get_release(request: Request[Any, Any, Any], release_id: ReleaseId) -> ReleaseView:
    """The release with its checks, reviews, grant and the diff against the previous approved one."""
    service = _service(request)
    with registry_errors():
        release = service.get_release(release_id)
        _check_visible(request, release)
        return _view(service, release)


@post(
    "/releases/{release_id:str}/review",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Approve or reject",
)
def review_release(
    request: Request[Any, Any, Any], release_id: ReleaseId, data: JSONBody[ReviewBody]
) -> ReleaseView:
    """Record a decision; approval may grant fewer (optional) scopes; 403 for one's own submission.

    A body of the wrong shape is a 400 and a release that does not exist a 404 before the decision's
    rules (a checklist confirmed, a reason for a rejection) are judged as a 422, as on every route."""
    service = _service(request)
    with registry_errors():
        if data.decision == "approve":
            release = service.approve(
                release_id,
                reviewer=_person(request),
                checklist=data.checklist,
                reasons=data.reasons,
                grant=data.grant,
            )
        else:
            if data.grant is not None:
                service.get_release(release_id)  # a release that does not exist is its 404 first
                raise InvalidInput("grant", "only an approval grants scopes")
            release = service.reject(
                release_id, reviewer=_person(request), reasons=data.reasons, checklist=data.checklist
            )
        return _view(service, release)


def _move(request: Request[Any, Any, Any], release_id: int, action: str, reason: str) -> ReleaseView:
    service = _service(request)
    with registry_errors():
        actor = _person(request) if action == "resume" else _actor(request)
        release = getattr(service, action)(release_id, actor=actor, reason=reason)
        return _view(service, release)


@post(
    "/releases/{release_id:str}/suspend",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Suspend a release (kill switch)",
)
def suspend_release(
    request: Request[Any, Any, Any], release_id: ReleaseId, data: JSONBody[ReasonBody]
) -> ReleaseView:
    """Approved → suspended; every running host stops the plugin on its next policy poll."""
    return _move(request, release_id, "suspend", data.reason)


@post(
    "/releases/{release_id:str}/resume",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Resume a suspended release",
)
def resume_release(
    request: Request[Any, Any, Any], release_id: ReleaseId, data: JSONBody[ReasonBody]
) -> ReleaseView:
    """Suspended → approved, with the grant it had.

    Four eyes: 403 ``registry.four-eyes`` for its submitter, for who suspended it, or for agreeing
    twice; a release requesting a high-sensitivity scope stays ``suspended`` after the first agreement
    until a second reviewer resumes it, and meanwhile its ``pending_resume`` names who agreed.
    """
    return _move(request, release_id, "resume", data.reason)


@post(
    "/releases/{release_id:str}/retire",
    opt=_REVIEW,
    sync_to_thread=True,
    status_code=200,
    summary="Retire a release",
)
def retire_release(
    request: Request[Any, Any, Any], release_id: ReleaseId, data: JSONBody[ReasonBody]
) -> ReleaseView:
    """Approved or suspended → retired, for good."""
    return _move(request, release_id, "retire", data.reason)


# -- audit -----------------------------------------------------------------------------------------


@get("/audit", opt=_REVIEW, sync_to_thread=True, summary="Audit events")
def audit_events(
    request: Request[Any, Any, Any],
    after: Annotated[int, QueryParameter(ge=0, le=_MAX_ID)] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    subject: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> AuditList:
    """Events after ``after`` in order, and the chain's head."""
    service = _service(request)
    with registry_errors():
        items = service.audit_events(
            after=after, limit=limit, subject=_filters({"subject": subject}).get("subject")
        )
        seq, digest = service.audit_head()
    return AuditList(items=items, head=AuditHead(seq=seq, hash=digest))


@get("/audit/verify", opt=_REVIEW, sync_to_thread=True, summary="Verify the audit chain")
def verify_audit(request: Request[Any, Any, Any]) -> AuditVerdict:
    """Walk the whole chain; ``ok`` false names the first broken row."""
    service = _service(request)
    with registry_errors():
        broken = service.verify_audit_chain()
        seq, digest = service.audit_head()
    return AuditVerdict(
        ok=broken is None,
        broken_seq=broken.seq if broken else None,
        reason=broken.reason if broken else None,
        head=AuditHead(seq=seq, hash=digest),
    )


ROUTES: list[Any] = [
    Router(
        _BASE,
        route_handlers=[
            list_publishers,
            get_publisher,
            create_publisher,
            suspend_publisher,
            reinstate_publisher,
            catalogue,
            submit_release,
            list_releases,
            get_release,
            review_release,
            suspend_release,
            resume_release,
            retire_release,
            audit_events,
            verify_audit,
        ],
        guards=[staff_guard],
        before_request=checked_query,  # submit_release's own hook replaces it (it takes no query)
        tags=["registry"],
    )
]
