"""Schema steps and how they are applied and recorded.

Two records, both written only in the transaction that made the change (or, for a step that
cannot run in a transaction, right after its last statement succeeded):

* ``schema_version`` — the canonical schema's versions (:data:`workbench.schema.MIGRATIONS`), on
  both engines. A new warehouse is created from the current table definitions and records every
  version at once; an older one runs each missing migration in a transaction of its own.
* ``schema_steps`` — PostgreSQL only: the engine-layout steps (the TimescaleDB extension, each
  hypertable, the continuous aggregate, and their way back to plain tables), by name. The catalog
  is the truth; the record says what ``db init`` built, so ``workbench doctor`` can tell a
  half-built warehouse from a complete one.

A failing statement becomes a :class:`~workbench.errors.StoreError` that names the step and the
statement; nothing of the failed step stays behind (its transaction is rolled back, or its undo
ran) and it is not recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from workbench import schema
from workbench.errors import StoreError

#: Table recording the engine-layout steps (PostgreSQL).
STEPS_TABLE = "schema_steps"

@dataclass(frozen=True)
class Check:
    """A query returning one boolean that must be true, else the step fails with ``message``."""

    query: sql.Composable | str
    message: str


@dataclass(frozen=True)
class Step:
    """One change of a PostgreSQL warehouse's layout, recorded under ``name`` when it succeeded.

    Attributes
    ----------
    name : str
        Stable name recorded in ``schema_steps`` (e.g. ``timescale.hypertable.machine_telemetry``).
    description : str
        For people (errors, doctor).
    statements : tuple
        Run in order; ``Check`` entries must return true. Empty: only record (adopt what is built).
    transactional : bool
        Run all statements and the record in one transaction. ``False`` for statements
        PostgreSQL refuses inside one (continuous aggregates); ``undo`` then cleans up a failure.
    undo : callable, optional
        Called with the connection after a non-transactional step failed; returns what it did.
    forgets : tuple of str
        Recorded steps this one reverses (their records are deleted with this one's).
    record : bool
        Whether the step itself is recorded (a reverse step only forgets).
    """

    name: str
    description: str
    statements: tuple[sql.Composable | str | Check, ...] = ()
    transactional: bool = True
    undo: Callable[[psycopg.Connection], str] | None = None
    forgets: tuple[str, ...] = ()
    record: bool = True


def _text(conn: psycopg.Connection | None, stmt: sql.Composable | str | Check) -> str:
    query = stmt.query if isinstance(stmt, Check) else stmt
    if isinstance(query, str):
        return query
    try:
        return query.as_string(conn)
    except Exception:  # naming the statement must never hide the error itself
        return repr(query)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def step_error(what: str, statement: str, exc: BaseException, *, after: str = "") -> StoreError:
    """The error of a failed schema step: which step, which statement, what the server said."""
    short = " ".join(statement.split())
    if len(short) > 300:
        short = short[:297] + "..."
    return StoreError(f"schema step '{what}' failed at `{short}`: {_first_line(exc)}"
                      f"{'; ' + after if after else ''}. Nothing of this step was kept or recorded.")


def steps_table_sql() -> str:
    """DDL of :data:`STEPS_TABLE`."""
    return (f"CREATE TABLE IF NOT EXISTS {STEPS_TABLE} (step TEXT PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL)")


def _execute(conn: psycopg.Connection, stmt: sql.Composable | str | Check) -> None:
    if isinstance(stmt, Check):
        row = conn.execute(stmt.query).fetchone()  # type: ignore[arg-type]
        if not (row and row[0]):
            raise StoreError(stmt.message)
        return
    conn.execute(stmt)  # type: ignore[arg-type]


def _record(conn: psycopg.Connection, step: Step) -> None:
    if step.forgets:
        conn.execute(sql.SQL("DELETE FROM {} WHERE step = ANY(%s)").format(sql.Identifier(STEPS_TABLE)),
                     (list(step.forgets),))
    if step.record:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT (step) DO UPDATE "
                             "SET applied_at = excluded.applied_at").format(sql.Identifier(STEPS_TABLE)),
                     (step.name, dt.datetime.now(dt.UTC)))


def apply_step(conn: psycopg.Connection, step: Step) -> None:
    """Run one step on an autocommit connection and record it, or raise :func:`step_error`.

    Raises
    ------
    StoreError
        A statement failed (or a check was false); the step left nothing behind.
    """
    current: sql.Composable | str | Check = ""
    if step.transactional:
        try:
            with conn.transaction():
                for current in step.statements:
                    _execute(conn, current)
                current = f"recording step {step.name}"
                _record(conn, step)
        except (psycopg.Error, StoreError) as exc:
            raise step_error(step.description, _text(conn, current), exc) from None
        return
    try:
        for current in step.statements:
            _execute(conn, current)
        current = f"recording step {step.name}"
        with conn.transaction():
            _record(conn, step)
    except (psycopg.Error, StoreError) as exc:
        after = ""
        if step.undo is not None:
            try:
                after = step.undo(conn)
            except psycopg.Error as undo_exc:
                after = f"undoing it failed too ({_first_line(undo_exc)}): run `workbench db init` again"
        raise step_error(step.description, _text(conn, current), exc, after=after) from None


def apply_steps(conn: psycopg.Connection, steps: Sequence[Step]) -> None:
    """Apply ``steps`` in order; the first failure stops (earlier steps stay, recorded)."""
    for step in steps:
        apply_step(conn, step)


# -- the canonical schema's versions (both engines) --------------------------------------------------

def pending(applied: int | None) -> list[schema.Migration]:
    """Migrations an existing warehouse at version ``applied`` still needs (none for a new one,
    which is created from the current table definitions)."""
    if applied is None:
        return []
    return [m for m in schema.MIGRATIONS if m.version > applied]


def record_version_sql(engine: str) -> str:
    """Insert one ``(version, applied_at)`` row, ignoring a version already recorded."""
    mark = "%s" if engine == "postgres" else "?"
    return f"INSERT INTO schema_version VALUES ({mark}, {mark}) ON CONFLICT (version) DO NOTHING"
