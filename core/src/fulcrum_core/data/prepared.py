"""``PreparedRead``: a prebuilt ``SELECT`` of the request path, run on its connection's DBAPI cursor.

A page whose customer misses the per-worker read caches runs three indexed one-statement reads (the
customer's live consents, a plugin document, a plugin's counters). Through ``Connection.execute`` each
cost about twice the CPU it costs here, on SQLite as on PostgreSQL: the compiled-cache lookup, an
execution context, the autobegin and the rollback that ends it, a ``Result``. These statements never
change, so each is compiled once per dialect and run with ``Connection._cursor_execute``, the method
SQLAlchemy itself uses for its side statements; rows come back as tuples.

What stays SQLAlchemy's: the pool (checkout, the reset on return), the connection's isolation
level (``Database.single_reads``: no ``BEGIN`` on SQLite, ``AUTOCOMMIT`` on PostgreSQL), the columns'
type processors (timestamps), the ``before_cursor_execute`` and ``after_cursor_execute`` events (the
SQLite statement deadline starts in one), echo logging, and the translation of driver errors into
SQLAlchemy's, with the connection invalidated on a disconnect. What is gone: ``before_execute`` and
``after_execute`` (no ``Executable`` is executed), and any rewriting of the statement by a
``before_cursor_execute`` listener with ``retval=True`` (none is installed).

Those two methods are SQLAlchemy's private API, which a minor release may change: fulcrum-core's
requirement stops below the next minor release, and importing this module checks that both are there
with the parameters called here, so a SQLAlchemy installed past the requirement fails at start, naming
them, instead of on a customer's first page.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy
from packaging.requirements import Requirement
from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect

__all__ = ["PreparedRead"]

_Processor = Callable[[Any], Any]

_PRIVATE_CALLS: dict[str, tuple[str, ...]] = {
    "_cursor_execute": ("cursor", "statement", "parameters", "context"),
    "_handle_dbapi_exception": ("e", "statement", "parameters", "cursor", "context"),
}
"""The private ``Connection`` methods :meth:`PreparedRead.rows` calls, and the parameters it passes, in
order (SQLAlchemy 2.0.40 to 2.1 have them so)."""


def _private_api_problem(connection: type[Any]) -> str | None:
    """Why ``connection`` (SQLAlchemy's ``Connection``) cannot run a prepared read, or None: a private
    method called here is gone, or its leading parameters are not the ones passed."""
    for method, expected in _PRIVATE_CALLS.items():
        found = getattr(connection, method, None)
        if found is None:
            problem = f"has no Connection.{method}"
            break
        names = tuple(inspect.signature(found).parameters)[1 : len(expected) + 1]
        if names != expected:
            problem = f"has Connection.{method}({', '.join(names)}), not ({', '.join(expected)})"
            break
    else:
        return None
    try:
        requires = [Requirement(r) for r in importlib.metadata.requires("fulcrum-core") or ()]
        wanted = str(next(r for r in requires if r.name.lower() == "sqlalchemy"))
    except (importlib.metadata.PackageNotFoundError, StopIteration):
        wanted = "the SQLAlchemy fulcrum-core's requirement names"
    return (
        f"SQLAlchemy {sqlalchemy.__version__} {problem}, which fulcrum_core.data.prepared calls for the "
        f"request path's reads: install {wanted}"
    )


if (_problem := _private_api_problem(Connection)) is not None:
    raise ImportError(_problem)


class _Form(NamedTuple):
    """One statement compiled for one dialect: what ``_init_compiled`` would work out on each run."""

    sql: str
    positional: tuple[str, ...] | None  # the parameter names in order, for a positional paramstyle
    given: dict[str, Any]  # values the statement carries itself (its literals), by parameter name
    binds: dict[str, _Processor]  # the parameters whose type converts them, by name
    results: tuple[_Processor | None, ...] | None  # per column; None when no column converts


def _compile(statement: Select[*tuple[Any, ...]], dialect: Dialect) -> _Form:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params or compiled.escaped_bind_names:
        raise ValueError("a prepared read takes plain bound parameters (no expanding IN, no escaped names)")
    names = compiled.bind_names
    binds: dict[str, _Processor] = {}
    for bind, name in names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.selected_columns
    )
    return _Form(
        sql=compiled.string,
        positional=tuple(compiled.positiontup or ()) if compiled.positional else None,
        given={name: bind.value for bind, name in names.items() if bind.value is not None},
        binds=binds,
        results=results if any(results) else None,
    )


class PreparedRead:
    """One prebuilt ``SELECT`` with plain bound parameters, compiled once per dialect; thread-safe."""

    __slots__ = ("_forms", "statement")

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._forms: weakref.WeakKeyDictionary[Dialect, _Form] = weakref.WeakKeyDictionary()

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect)
        if form is None:  # two threads may both compile it: the same form either way
            form = self._forms[dialect] = _compile(self.statement, dialect)
        return form

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        """Every row the statement selects with ``params`` bound, as tuples, on ``conn``'s connection.

        Driver errors raise as SQLAlchemy's (``OperationalError`` for an interrupted statement).
        """
        form = self._form(conn.dialect)
        values = {**form.given, **params} if form.given else params
        binds = form.binds
        if binds:
            values = {name: binds[name](value) if name in binds else value for name, value in values.items()}
        order = form.positional
        arguments: Any = values if order is None else tuple(values[name] for name in order)
        cursor = conn.connection.cursor()
        try:
            conn._cursor_execute(cursor, form.sql, arguments)  # events, echo, errors: SQLAlchemy's own
            try:
                rows: Sequence[tuple[Any, ...]] = cursor.fetchall()
            except BaseException as exc:  # a deadline can also stop a statement while its rows are read
                conn._handle_dbapi_exception(exc, form.sql, arguments, cursor, None)
        finally:
            cursor.close()
        results = form.results
        if results is None:
            return rows
        return [
            tuple(v if convert is None else convert(v) for convert, v in zip(results, row, strict=True))
            for row in rows
        ]
