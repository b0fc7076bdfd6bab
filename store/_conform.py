"""Checking a batch against a table before anything is written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fulmen.errors import FulmenError
from fulmen.store._table_schemas import TABLES


class BatchRejected(FulmenError):
    """A batch that does not fit its table. Nothing of it was written."""

    def __init__(self, table: str, column: str, row: int | None, reason: str) -> None:
        where = f"column {column!r}" + ("" if row is None else f", row {row}")
        super().__init__(f"{table}: {where}: {reason}")
        self.table = table
        self.column = column
        self.row = row
        self.reason = reason


def conform(table: str, batch: pa.Table) -> pa.Table:
    """`batch` with the table's exact column order and types; raises `BatchRejected` at the
    first column that is missing, unknown, of the wrong type, or null where it may not be."""
    schema = TABLES.get(table)
    if schema is None:
        raise BatchRejected(table, "*", None, f"no table {table!r}; tables: {sorted(TABLES)}")
    unknown = [name for name in batch.column_names if name not in schema.names]
    if unknown:
        raise BatchRejected(table, unknown[0], None, "not a column of this table")
    columns = []
    for field in schema:
        if field.name not in batch.column_names:
            raise BatchRejected(table, field.name, None, "missing")
        column = batch.column(field.name)
        if not field.nullable and column.null_count:
            first_null = pc.index(pc.is_null(column), True).as_py()
            raise BatchRejected(table, field.name, first_null, "null in a non-nullable column")
        columns.append(_cast(table, field, column))
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(table: str, field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type == field.type:
        return column
    try:
        return column.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row = _first_uncastable(column, field.type)
        raise BatchRejected(table, field.name, row, f"{column.type} → {field.type}: {exc}") from exc


def _first_uncastable(column: pa.ChunkedArray, target: pa.DataType) -> int | None:
    offset = 0
    for chunk in column.chunks:
        for index in range(len(chunk)):
            try:
                chunk.slice(index, 1).cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return offset + index
        offset += len(chunk)
    return None
