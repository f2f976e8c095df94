"""A PEP 503 simple package index of the approved plugin wheels: ``pip``/``uv`` install from it.

``/registry/simple/`` lists projects, ``/registry/simple/{project}/`` their files (each link with a
``#sha256=`` fragment, which installers verify), ``/registry/files/{sha256}/{filename}`` the bytes.
Only releases that are approved and not suspended appear, so nothing unapproved can be installed
from here; a suspended release disappears from the index on its next request. A wheel appears only
under its plugin's own project, ``fulcrum-<plugin id>`` (the registry's ``project.matches_id``): one
approved before that check under another plugin's project is never served, so installing that project
cannot install another publisher's code.

Access: a staff token with ``registry:review`` (every project) or ``registry:publish`` (its own
publisher's projects only, as for releases), like the registry's read routes; only health, metadata
and JWKS are public, and partners' wheels are their code. Installers speak HTTP Basic, not Bearer:
these routes also take the token as the password of the user ``__token__`` (``auth.basic``), so
``pip install --index-url https://__token__:<token>@host/registry/simple/`` works, as does netrc;
their 401 challenges ``Basic realm="fulcrum registry"`` so pip asks for credentials.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Annotated, Any

from fulcrum_registry import RegistryService, ReleaseRead, project_name
from fulcrum_sdk._in_words import worded
from litestar import Request, Response, get
from litestar.params import FromPath, PathParameter
from litestar.response import File
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from fulcrum_core.api.registry_access import acting_publisher, index_guard, installs_all
from fulcrum_core.api.registry_errors import registry_errors
from fulcrum_core.auth.basic import TOKEN_AS_BASIC_OPT
from fulcrum_core.errors import NotFound
from fulcrum_core.observability.throttle import ThrottledWarning
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.registry_host import registry_of
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "approved_files"]

_STAFF: dict[str, Any] = {"scopes": [], TOKEN_AS_BASIC_OPT: True}  # and index_guard
_SHA256 = worded(r"^[0-9a-f]{64}(?!\n)$", "a SHA-256 digest: 64 lowercase hexadecimal digits")
_HTML = "text/html"  # litestar adds "; charset=utf-8" to text/ types


_log = logging.getLogger("fulcrum.registry.index")
_LEFT_OUT = ThrottledWarning(
    _log, "the package index leaves out approved releases it cannot serve safely; suspend them",
    every_s=300.0,
)
"""Each index request finds them again: one line per five minutes, naming the first found."""


def _project(release: ReleaseRead) -> str | None:
    """The release's project, or None when its wheel is not named after its plugin (``fulcrum-<id>``)."""
    try:
        name = str(canonicalize_name(parse_wheel_filename(release.artifact.filename)[0]))
    except InvalidWheelFilename:
        name = None
    if name is not None and release.plugin_id is not None and name == project_name(release.plugin_id):
        return name
    _LEFT_OUT(
        f"release {release.id} of plugin {release.plugin_id}: its wheel {release.artifact.filename!r} is "
        f"not named {project_name(release.plugin_id or '?')!r}, so another plugin's installers could take it"
    )
    return None


def approved_files(service: RegistryService, publisher: str | None = None) -> dict[str, list[ReleaseRead]]:
    """Normalised project name → its approved, not suspended releases (oldest first), of ``publisher``
    when given.

    Only releases in the live policy: those of a suspended publisher are not served either, nor those
    whose stored manifest fails today's rules (said in the log). Only wheels
    named ``fulcrum-<their plugin id>``; a project still holding two plugins' wheels (ids that differ
    only in folded hyphens, approved before ids refused ``--``) is left out: neither is the project.
    """
    live = {r.release_id for versions in service.active_policy().values() for r in versions.values()}
    projects: dict[str, list[ReleaseRead]] = {}
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"state": "approved", "limit": 100}
        if publisher is not None:
            query["publisher"] = publisher
        if cursor:
            query["cursor"] = cursor
        page = service.list_releases(query)
        for release in page.items:
            if release.manifest_problem is not None:
                problem = release.manifest_problem
                _LEFT_OUT(
                    f"release {release.id} of plugin {release.plugin_id}: its manifest fails today's rules "
                    f"({problem.key}: {problem.problem})"
                )
            name = _project(release) if release.id in live else None
            if name is not None:
                projects.setdefault(name, []).append(release)
        cursor = page.next_cursor
        if cursor is None:
            shared = {name: sorted({str(r.plugin_id) for r in rs}) for name, rs in projects.items()}
            for name, plugins in shared.items():
                if len(plugins) > 1:
                    _LEFT_OUT(f"project {name!r} holds the wheels of plugins {', '.join(plugins)}")
            return {name: releases for name, releases in projects.items() if len(shared[name]) == 1}


def _page(title: str, links: list[str]) -> Response[str]:
    body = "\n".join(links)
    html = (
        f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
    return Response(html, media_type=_HTML)


def _files(request: Request[Any, Any, Any]) -> dict[str, list[ReleaseRead]]:
    """What the caller may install: every approved project for an installer or a reviewer, its own for a
    publisher."""
    publisher = None if installs_all(request) else acting_publisher(request)
    with registry_errors():
        return approved_files(registry_of(runtime_of(request)).service, publisher)


@get(
    "/registry/simple",
    opt=_STAFF,
    guards=[index_guard],
    sync_to_thread=True,
    tags=["registry"],
    summary="PEP 503 project list",
)
def simple_index(request: Request[Any, Any, Any]) -> Response[str]:
    """Every project with at least one approved, not suspended release."""
    names = sorted(_files(request))
    return _page("Fulcrum approved plugins", [f'<a href="{escape(n)}/">{escape(n)}</a>' for n in names])


@get(
    "/registry/simple/{project:str}",
    opt=_STAFF,
    guards=[index_guard],
    sync_to_thread=True,
    tags=["registry"],
    summary="PEP 503 project page",
)
def simple_project(request: Request[Any, Any, Any], project: FromPath[str]) -> Response[str]:
    """The approved wheels of one project, each linked with its SHA-256."""
    releases = _files(request).get(str(canonicalize_name(project)))
    if not releases:
        raise NotFound(
            f"no approved releases of {echoed(project)}", code="registry.not-found", field="project"
        )
    links = [
        f'<a href="/registry/files/{r.artifact.sha256}/{escape(r.artifact.filename)}'
        f'#sha256={r.artifact.sha256}">{escape(r.artifact.filename)}</a>'
        for r in releases
    ]
    return _page(f"Links for {project}", links)


@get(
    "/registry/files/{sha256:str}/{filename:str}",
    opt=_STAFF,
    guards=[index_guard],
    sync_to_thread=True,
    tags=["registry"],
    summary="An approved wheel",
)
def download(
    request: Request[Any, Any, Any],
    sha256: Annotated[str, PathParameter(pattern=_SHA256)],
    filename: FromPath[str],
) -> File:
    """The wheel's bytes, only while a release with exactly this file is approved and not suspended."""
    service = registry_of(runtime_of(request)).service
    live = any(
        r.artifact.sha256 == sha256 and r.artifact.filename == filename
        for releases in _files(request).values()
        for r in releases
    )
    if not live:
        raise NotFound("no approved release serves this file", code="registry.not-found", field="sha256")
    with registry_errors():
        stored = service.artifacts.get(sha256)
    return File(stored.path, filename=filename, media_type="application/octet-stream")


ROUTES: list[Any] = [simple_index, simple_project, download]
