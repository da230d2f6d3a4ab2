"""Hot-path statements: SQL written once per connection, run without the ORM's query building.

Building a query with the ORM cost several times what running it did: a session read through
`select_related` took about 850 µs on SQLite where the same SQL ran in 130 µs. The refresh path
(read, compare-and-set, audit insert) runs on every token rotation, so its statements are kept
here as SQL; their parameters are encoded by the models' own fields and their rows decoded into
model instances the way the ORM itself does, so the rest of the code cannot tell the difference.
Everything that is not on a hot path stays on the ORM.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from tortoise import BaseDBAsyncClient, fields
from tortoise.models import Model
from tortoise.timezone import get_timezone, get_use_tz

from models.ids import SpelledUUID

M = TypeVar("M", bound=Model)
T = TypeVar("T")
# A row by column name: a dict from tortoise or SQLite, an asyncpg Record from a held connection.
Row = Mapping[str, Any]

_PLACEHOLDER = re.compile(r"\?")
_UUIDS = (uuid.UUID, SpelledUUID)


@functools.cache
def columns(model: type[Model]) -> tuple[str, ...]:
    """The model's database columns, in a fixed order."""
    return tuple(sorted(model._meta.db_fields))


def for_dialect(sql: str, dialect: str) -> str:
    """SQL written with `?` placeholders, numbered `$1, $2, …` for PostgreSQL."""
    if dialect != "postgres":
        return sql
    numbers = iter(range(1, sql.count("?") + 1))
    return _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql)


class Statement:
    """One statement, its SQL made for each dialect the first time it runs there."""

    def __init__(self, write: Callable[[], str]) -> None:
        self._write = write
        self._by_dialect: dict[str, str] = {}

    def sql(self, conn: BaseDBAsyncClient) -> str:
        dialect = conn.capabilities.dialect
        sql = self._by_dialect.get(dialect)
        if sql is None:
            sql = self._by_dialect[dialect] = for_dialect(self._write(), dialect)
        return sql

    async def rows(self, conn: BaseDBAsyncClient, values: list[Any]) -> Sequence[Row]:
        """The rows it returns; on PostgreSQL outside a transaction, run on a connection the
        client holds for these statements (see api/postgres.py, `fetch_held`)."""
        if provides(type(conn), HeldConnections):
            return await cast(HeldConnections, conn).fetch_held(self.sql(conn), values)
        return await conn.execute_query_dict(self.sql(conn), values)

    async def grouped_row(self, conn: BaseDBAsyncClient, values: list[Any]) -> Row:
        """The one row a statement that always returns exactly one gives for `values`, outside
        any transaction; on PostgreSQL sent together with other executions waiting to go (see
        api/postgres.py, `fetch_grouped`)."""
        if provides(type(conn), GroupedStatements):
            return await cast(GroupedStatements, conn).fetch_grouped(self.sql(conn), values)
        rows = await self.rows(conn, values)
        if len(rows) != 1:
            raise ValueError(f"{len(rows)} rows where the statement gives exactly one")
        return rows[0]

    async def lookup(self, conn: BaseDBAsyncClient, values: list[Any]) -> Sequence[Row]:
        """`rows` for a short read outside any transaction: on SQLite, on the event loop's own
        thread (see api/sqlite.py, `read_on_loop`)."""
        if provides(type(conn), LoopReads):
            return await cast(LoopReads, conn).read_on_loop(self.sql(conn), values)
        return await self.rows(conn, values)

    async def run(self, conn: BaseDBAsyncClient, values: list[Any]) -> int:
        """Runs a write; the number of rows it changed."""
        changed, _ = await conn.execute_query(self.sql(conn), values)
        return changed


@runtime_checkable
class OneTripTransactions(Protocol):
    """A client that runs a whole transaction in one call (Keyturn's SQLite, api/sqlite.py)."""

    async def run_in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...


@runtime_checkable
class HeldConnections(Protocol):
    """A client that runs a statement on a connection it holds (Keyturn's PostgreSQL,
    api/postgres.py); transactions run on their own connection and are never one."""

    async def fetch_held(self, sql: str, values: list[Any]) -> Sequence[Row]: ...


@runtime_checkable
class GroupedStatements(Protocol):
    """A client that sends executions of a one-row statement waiting at the same time together,
    in one round trip and one transaction (Keyturn's PostgreSQL, api/postgres.py)."""

    async def fetch_grouped(self, sql: str, values: list[Any]) -> Row: ...


@runtime_checkable
class LoopReads(Protocol):
    """A client that can run a short read on the event loop's thread (api/sqlite.py)."""

    async def read_on_loop(self, sql: str, values: list[Any]) -> list[dict[str, Any]]: ...


@functools.cache
def provides(client_class: type, protocol: type) -> bool:
    """`issubclass(client_class, protocol)`, answered once per pair: a runtime-checkable
    protocol's own isinstance walks its members every time (4 to 7 µs), on every hot statement."""
    return issubclass(client_class, protocol)


def encode(model: type[Model], *values: tuple[str, Any]) -> list[Any]:
    """Parameters as the ORM would send them, each encoded by the model's field of that name."""
    return [_encoder(model, name)(value) for name, value in values]


def encode_row(model: type[Model], names: tuple[str, ...], values: Sequence[Any]) -> list[Any]:
    """`encode` for the hot statements' fixed lists of names: their encoders found with one
    lookup, not one a value (a rotation and its event, 20 values: 11.7 µs -> 10.2)."""
    return [
        encode_one(value) for encode_one, value in zip(_encoders(model, names), values, strict=True)
    ]


@functools.cache
def _encoders(model: type[Model], names: tuple[str, ...]) -> tuple[Callable[[Any], Any], ...]:
    return tuple(_encoder(model, name) for name in names)


@functools.cache
def _encoder(model: type[Model], name: str) -> Callable[[Any], Any]:
    """The field's own `to_db_value`, behind a shortcut for the values the hot paths send.

    `to_db_value` checks the value's type, runs the field's validators and, for a datetime,
    converts it to the configured zone: about 1 µs a value, 20 for a rotation and its event.
    The shortcut returns, without those steps, exactly what they would have returned: a UUID's
    text, a UTC datetime as it is (the configured zone is UTC; the field would only swap its
    `tzinfo` for an equal one), an int, a str within the field's length. Anything else takes
    the field's own path.
    """
    field = model._meta.fields_map[name]

    def slow(value: Any) -> Any:
        return field.to_db_value(value, model)

    if isinstance(field, fields.UUIDField):
        return lambda value: str(value) if type(value) in _UUIDS else slow(value)
    if isinstance(field, fields.DatetimeField) and not (field.auto_now or field.auto_now_add):
        if not (get_use_tz() and get_timezone().upper() == "UTC"):
            return slow
        return lambda value: (
            value if type(value) is datetime and value.tzinfo is UTC else slow(value)
        )
    if type(field) is fields.IntField and not field.validators:
        return lambda value: value if type(value) is int else slow(value)
    if type(field) is fields.CharField and len(field.validators) == 1:  # its length, nothing more
        longest = field.max_length
        return lambda value: value if type(value) is str and len(value) <= longest else slow(value)
    return slow


def decode(model: type[M], row: Row, prefix: str) -> M:
    """A model instance from the `prefix`-aliased columns of a row, as the ORM builds one."""
    return model._init_from_db(**{column: row[prefix + column] for column in columns(model)})


def decode_values(
    model: type[Model], row: Row, prefix: str, names: tuple[str, ...]
) -> dict[str, Any]:
    """Some of a model's columns from the `prefix`-aliased columns of a row, as Python values."""
    fields = model._meta.fields_map
    return {name: fields[name].to_python_value(row[prefix + name]) for name in names}


def select_list(
    model: type[Model], table: str, prefix: str, names: tuple[str, ...] | None = None
) -> str:
    """The columns `names` (default: every column) of the model's table `table`, aliased
    `prefix` + column."""
    return ", ".join(
        f'{table}."{column}" AS "{prefix}{column}"' for column in names or columns(model)
    )


def insert_sql(model: type[Model], names: tuple[str, ...]) -> str:
    # Names from the model's own metadata, never from a caller: nothing to inject.
    quoted = ", ".join(f'"{name}"' for name in names)
    marks = ", ".join("?" for _ in names)
    return f'INSERT INTO "{model._meta.db_table}" ({quoted}) VALUES ({marks})'  # noqa: S608
