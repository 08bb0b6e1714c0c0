"""Whole model rows read with plain SQL, for the order path.

The order path runs a dozen short statements per request. Compiling each one
through the ORM costs more CPU than PostgreSQL needs to run it (about half a
millisecond a query on the benchmark machine, docs/benchmarks.md), so the hot
reads are written once as SQL and their rows turned into model instances
here, exactly as the ORM would: the backend's and the fields' converters
run on every value (on SQLite they parse times and decimals).

    INSTRUMENT = Columns(Instrument, "i")
    cursor.execute(f"SELECT {INSTRUMENT.sql} FROM ... i WHERE i.id = %s", [pk])
    instrument, _next = INSTRUMENT.load(cursor.fetchone())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


class Columns(Generic[M]):
    """The concrete columns of ``model`` under a table alias, and the loader
    that turns them back into an instance (``Model.from_db``, so the instance
    is "from the database": saving it updates, never inserts)."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        quote = connection.ops.quote_name
        self.sql = ", ".join(f"{alias}.{quote(field.column)}" for field in self.fields)
        self.width = len(self.fields)
        self._converters: dict[str, list[tuple[int, list[tuple[Converter, Any]]]]] = {}

    @property
    def table(self) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    def _converters_for_vendor(self) -> list[tuple[int, list[tuple[Converter, Any]]]]:
        converters = self._converters.get(connection.vendor)
        if converters is None:
            converters = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)  # type: ignore[attr-defined]
                if found:
                    converters.append((index, [(converter, column) for converter in found]))
            self._converters[connection.vendor] = converters
        return converters

    def load(self, row: Sequence[Any], start: int = 0) -> tuple[M, int]:
        """The instance from ``row[start:start + width]``, and where the next one starts."""
        values = list(row[start:start + self.width])
        for index, converters in self._converters_for_vendor():
            value = values[index]
            for converter, column in converters:
                value = converter(value, column, connection)
            values[index] = value
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values), start + self.width

    def load_or_none(self, row: Sequence[Any], start: int = 0) -> tuple[M | None, int]:
        """As ``load`` for the nullable side of an outer join: ``None`` when its primary key is NULL."""
        pk_index = next(i for i, field in enumerate(self.fields) if field.primary_key)
        if row[start + pk_index] is None:
            return None, start + self.width
        return self.load(row, start)


def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def placeholders(count: int) -> str:
    """``%s, %s, ...`` for an ``IN (...)`` list of ``count`` values."""
    return ", ".join(["%s"] * count)


def db_time(value: Any) -> Any:
    """A datetime as the ORM would send it (SQLite stores text)."""
    return connection.ops.adapt_datetimefield_value(value)


def lock_clause(of: str) -> str:
    """`` FOR NO KEY UPDATE OF <alias>`` where the database locks rows (not SQLite)."""
    features = connection.features
    if not features.has_select_for_update:
        return ""
    mode = "NO KEY UPDATE" if features.has_select_for_no_key_update else "UPDATE"
    return f" FOR {mode} OF {of}" if features.has_select_for_update_of else f" FOR {mode}"


def insert(instance: Model) -> None:
    """Insert ``instance`` with one plain ``INSERT ... RETURNING`` its new
    primary key, preparing every value as ``Model.save`` would (defaults
    set, ``auto_now`` fields stamped, values adapted to the backend)."""
    insert_many([instance])


def insert_many(instances: Sequence[Model]) -> None:
    """Insert instances of one model with one multi-row ``INSERT ...
    RETURNING`` (``bulk_create`` without its compile); each gets its primary
    key, in the order given (rows are inserted, and their serial keys
    drawn, in the order of the VALUES list)."""
    if not instances:
        return
    sql, values = insert_sql(instances)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(instances[0]._meta.pk.column)}", values)
        keys = [key for (key,) in cursor.fetchall()]
    for instance, key in zip(instances, sorted(keys), strict=True):
        instance.pk = key
        instance._state.adding = False
        instance._state.db = DEFAULT_DB_ALIAS


def insert_sql(instances: Sequence[Model]) -> tuple[str, list[Any]]:
    """The multi-row ``INSERT`` of instances of one model, without
    ``RETURNING``: for ``insert_many``, or to run inside another statement
    (a data-modifying ``WITH``) when nobody needs the new keys."""
    model = type(instances[0])
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    for instance in instances:
        # As bulk_create: a foreign key set to an object saved since takes its key.
        instance._prepare_related_fields_for_save(operation_name="insert")  # type: ignore[attr-defined]
    row = f"({placeholders(len(fields))})"
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
           f"VALUES {', '.join([row] * len(instances))}")
    return sql, [field.get_db_prep_save(field.pre_save(instance, True), connection)
                 for instance in instances for field in fields]


def converted(model: type[Model], field_name: str, value: Any) -> Any:
    """One column's value as the ORM would give it (SQLite answers floats
    and text where PostgreSQL answers Decimal and datetime)."""
    field: Any = model._meta.get_field(field_name)
    column = field.get_col(model._meta.db_table)
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value
