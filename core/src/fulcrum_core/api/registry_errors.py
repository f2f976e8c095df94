"""The one place where registry errors become the host's HTTP errors (and so problem details).

fulcrum_registry error     host error            status
InvalidInput               Unprocessable         422  names the field
NotFound                   NotFound              404
PermissionDenied           Forbidden             403  (FourEyesViolation: code four-eyes)
IllegalTransition          Conflict              409  carries ``state`` and ``allowed``
Conflict, AlreadyExists    Conflict              409
RegistryUnavailable        ServiceUnavailable    503
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fulcrum_registry import Conflict as RegistryConflict
from fulcrum_registry import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RegistryError,
    RegistryUnavailable,
)

from fulcrum_core import errors
from fulcrum_core.parameter_problems import echoed

__all__ = ["registry_errors", "translate"]


def translate(exc: RegistryError) -> errors.CoreError:
    """The host error for a registry error, keeping its stable code."""
    code = f"registry.{exc.code}"
    if isinstance(exc, InvalidInput):
        return errors.Unprocessable(exc.detail, code=code, field=exc.field)
    if isinstance(exc, NotFound):  # the id may be a client's: echoed cut short
        ident = echoed(exc.ident) if isinstance(exc.ident, str) else repr(exc.ident)
        return errors.NotFound(f"no {exc.kind} {ident}", code=code)
    if isinstance(exc, PermissionDenied):
        return errors.Forbidden(exc.detail, code=code)
    if isinstance(exc, IllegalTransition):
        return errors.Conflict(
            exc.detail, code=code, release_id=exc.release_id, state=exc.current, allowed=list(exc.allowed)
        )
    if isinstance(exc, RegistryConflict):
        return errors.Conflict(exc.detail, code=code)
    if isinstance(exc, RegistryUnavailable):
        return errors.ServiceUnavailable(exc.detail, code=code)
    return errors.ServiceUnavailable(exc.detail, code=code)


@contextmanager
def registry_errors() -> Iterator[None]:
    """Run a block of registry calls; any ``RegistryError`` leaves it as the matching host error."""
    try:
        yield
    except RegistryError as exc:
        raise translate(exc) from exc
