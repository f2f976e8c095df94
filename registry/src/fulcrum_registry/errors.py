"""The registry's error tree: what its service raises, so the API can map each branch to one status.

    RegistryError
    ├── InvalidInput           a caller's argument is malformed or out of range (names the field) → 422
    ├── NotFound               a publisher, plugin or release id that does not exist → 404
    ├── PermissionDenied       the rules forbid this actor doing this → 403
    │   ├── FourEyesViolation  a reviewer tried to decide on their own submission, or approve twice
    │   └── PublisherSuspended the publisher is suspended: it cannot submit, its releases cannot be approved
    ├── Conflict               the request clashes with what is stored → 409
    │   ├── AlreadyExists      a publisher id (or similar key) is taken
    │   └── IllegalTransition  the release is not in a state that allows the action (carries the state)
    └── RegistryUnavailable    the database or the artifact store failed; the call may be retried → 503

Database errors are translated into this tree in exactly one place (``fulcrum_registry._db``); nothing
else catches SQLAlchemy exceptions.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Conflict",
    "FourEyesViolation",
    "IllegalTransition",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "PublisherSuspended",
    "RegistryError",
    "RegistryUnavailable",
]


class RegistryError(Exception):
    """Base of every error the registry raises; ``code`` is a stable slug for API clients."""

    code: str = "registry-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(RegistryError):
    """An argument is malformed: ``field`` names it (``grant``, ``reasons``, ``filename``...)."""

    code = "invalid-input"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(RegistryError):
    """No ``kind`` (``publisher``, ``plugin``, ``release``) with id ``ident`` exists."""

    code = "not-found"

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class PermissionDenied(RegistryError):
    """The registry's rules forbid this actor doing this."""

    code = "forbidden"


class FourEyesViolation(PermissionDenied):
    """A release needs decisions from people other than its submitter, each counted once."""

    code = "four-eyes"


class PublisherSuspended(PermissionDenied):
    """The platform team suspended the publisher: nothing new of theirs is filed or approved."""

    code = "publisher-suspended"

    def __init__(self, publisher_id: str, doing: str) -> None:
        super().__init__(
            f"publisher {publisher_id!r} is suspended: {doing}; "
            "the platform team reinstates it (fulcrum registry reinstate-publisher)"
        )
        self.publisher_id = publisher_id


class Conflict(RegistryError):
    """The request clashes with stored state."""

    code = "conflict"


class AlreadyExists(Conflict):
    """A ``kind`` with id ``ident`` exists already."""

    code = "already-exists"

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident!r} exists already")
        self.kind = kind
        self.ident = ident


class IllegalTransition(Conflict):
    """``action`` is not allowed on a release in state ``current``; ``allowed`` lists what is."""

    code = "illegal-transition"

    def __init__(self, release_id: int, action: str, current: str, allowed: tuple[str, ...]) -> None:
        hint = f"; from {current!r} you may: {', '.join(allowed)}" if allowed else f"; {current!r} is final"
        super().__init__(f"release {release_id} is {current!r}: cannot {action}{hint}")
        self.release_id = release_id
        self.action = action
        self.current = current
        self.allowed = allowed


class RegistryUnavailable(RegistryError):
    """The database or artifact store failed in a way the caller cannot fix; retrying may help."""

    code = "unavailable"
