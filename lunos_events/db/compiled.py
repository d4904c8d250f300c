"""SQLAlchemy Core statements executed on the stdlib sqlite3 driver, compiled once.

Hot paths on the embedded SQLite file run their statements here instead of through an engine: the
SQL is still written with SQLAlchemy (so PostgreSQL runs the very same statements through the
engine), but each execution costs ~6 µs instead of the engine's ~40 µs. SQLAlchemy's own bind
and result processors (JSON, booleans) are applied, and driver errors come out as SQLAlchemy's
exceptions, so callers cannot tell the difference.

Statements are module-level constants that run unchanged on both paths: inserts are plain
`insert(table)` given every column, and `bindparam` names are never column names (the engine
reserves those in INSERT and UPDATE statements).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import Executable

_REQUIRED = object()


class Rows:
    """What a statement returned: its rows (empty without RETURNING/SELECT) and rows affected."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # (name, default value or _REQUIRED, bind processor) per positional parameter.
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    results: tuple[Callable[[Any], Any] | None, ...]
    # Derived from `binds`: the common call gives every parameter, and few need a bind processor.
    names: tuple[str, ...]
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def of(
        cls,
        sql: str,
        binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...],
        results: tuple[Callable[[Any], Any] | None, ...],
    ) -> _Compiled:
        names = tuple(name for name, _, _ in binds)
        processed = tuple((i, process) for i, (_, _, process) in enumerate(binds) if process is not None)
        return cls(sql, binds, results, names, processed)

    def parameters(self, params: Mapping[str, Any]) -> list[Any]:
        try:
            values = [params[name] for name in self.names]
        except KeyError:
            values = [self._value_or_default(params, name, default) for name, default, _ in self.binds]
        for i, process in self.processed:
            values[i] = process(values[i])
        return values

    @staticmethod
    def _value_or_default(params: Mapping[str, Any], name: str, default: Any) -> Any:
        value = params.get(name, default)
        if value is _REQUIRED:
            raise exc.ArgumentError(f"missing value for bind parameter {name!r}")
        return value

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self.results, raw, strict=True)
        )


def sqlalchemy_error(sql: str, params: Any, error: sqlite3.Error) -> exc.DBAPIError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError, ...)."""
    return exc.DBAPIError.instance(sql, params, error, sqlite3.Error)


class CompiledStatements:
    """Compiles each statement once for SQLite and runs it on a given sqlite3 connection."""

    def __init__(self) -> None:
        self._dialect = sqlite_dialect.dialect(dbapi=sqlite3)
        # Keyed by the statement object itself, which keeps it alive: an id() could be reused.
        self._cache: dict[Executable, _Compiled] = {}

    def execute(self, conn: sqlite3.Connection, statement: Executable, params: Mapping[str, Any]) -> Rows:
        compiled = self._compiled(statement)
        values = compiled.parameters(params)
        try:
            cursor = conn.execute(compiled.sql, values)
            raw_rows = cursor.fetchall()
        except sqlite3.Error as error:
            raise sqlalchemy_error(compiled.sql, values, error) from error
        rows = [compiled.row(r) for r in raw_rows] if compiled.results else raw_rows
        return Rows(rows, cursor.rowcount)

    def execute_many(
        self, conn: sqlite3.Connection, statement: Executable, params: Iterable[Mapping[str, Any]]
    ) -> int:
        compiled = self._compiled(statement)
        values = [compiled.parameters(p) for p in params]
        try:
            return conn.executemany(compiled.sql, values).rowcount
        except sqlite3.Error as error:
            raise sqlalchemy_error(compiled.sql, values, error) from error

    def _compiled(self, statement: Executable) -> _Compiled:
        compiled = self._cache.get(statement)
        if compiled is None:
            compiled = self._cache[statement] = self._compile(statement)
        return compiled

    def _compile(self, statement: Executable) -> _Compiled:
        sa = statement.compile(dialect=self._dialect)
        binds = []
        for name in sa.positiontup or ():
            bind = sa.binds[name]
            default = _REQUIRED if bind.required else bind.effective_value
            binds.append((name, default, bind.type.bind_processor(self._dialect)))
        results = tuple(
            column.type.result_processor(self._dialect, None)
            for column in getattr(statement, "exported_columns", ())  # RETURNING or SELECT columns
        )
        return _Compiled.of(sa.string, tuple(binds), results if any(results) else ())
