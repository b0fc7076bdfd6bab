"""What a client of the store server may run: allow-lists, checked on the lexed SQL.

The store server runs a client's SQL inside the process that owns the store, on the store's
host. Nothing a client sends may reach that host's files, programs or network, whoever the
client is; a read-only user may only read. :func:`check_statement` enforces that before the
engine sees the statement, on :func:`fulmen.store._sql_lexer.tokens` (so case, comments,
quoting and nesting do not hide a call):

* The statement is one of :data:`WRITER_STATEMENTS` (:data:`READER_STATEMENTS` for a
  read-only user): :data:`DENIED_STATEMENTS` (``SYSTEM``, ``ATTACH``, ``BACKUP`` …) are
  refused, and a first word that starts no statement is a SYNTAX_ERROR.
* ``CREATE`` makes only :data:`CREATABLE` objects (no dictionaries with their file, HTTP
  or executable sources, no named collections).
* Every call of a name the engine knows as a table function must be in
  :data:`TABLE_FUNCTIONS` (``numbers``, ``values``, ``view`` …): ``file``, ``url``, ``s3``,
  ``remote``, ``executable``, ``input`` … are refused anywhere, ``INSERT INTO FUNCTION`` and
  ``ENGINE = File(…)`` included, in any case or quoting. A query parameter may not name a
  called function, and :data:`HOST_CALLS` (``disk(…)``, ``catboostEvaluate``) are refused.
* Every ``ENGINE = <name>`` is in :data:`ENGINES` or a ``*MergeTree``.
* No setting of :data:`HOST_SETTINGS` (schema and template files, introspection) is named,
  in the SQL or as a URL parameter (:func:`check_setting`).

A refusal is an ACCESS_DENIED :class:`ClickHouseError` (HTTP 403) naming what was refused.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import pairwise

from fulmen.store._http_engine import ClickHouseError
from fulmen.store._sql_lexer import Token, tokens

READER_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
"""What a read-only user may run (the engine also runs it with ``readonly=1``)."""

WRITER_STATEMENTS = READER_STATEMENTS | {
    "INSERT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "EXCHANGE", "OPTIMIZE",
    "DELETE", "UPDATE", "SET", "USE", "CHECK",
}  # fmt: skip
"""What the writing user may run."""

DENIED_STATEMENTS = frozenset(
    {"SYSTEM", "ATTACH", "DETACH", "BACKUP", "RESTORE", "GRANT", "REVOKE", "KILL", "UNDROP",
     "MOVE", "EXECUTE", "WATCH", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE", "UPSERT"}
)  # fmt: skip
"""Statements nobody may run here: refused with ACCESS_DENIED; a first word in no list at
all is answered as a SYNTAX_ERROR (it is refused either way)."""

CREATABLE = frozenset({"TABLE", "DATABASE", "VIEW", "MATERIALIZED"})
"""What ``CREATE`` may make (after ``OR REPLACE``/``TEMPORARY``/``IF NOT EXISTS``)."""

TABLE_FUNCTIONS = frozenset(
    name.upper()
    for name in (
        "numbers", "numbers_mt", "zeros", "zeros_mt", "generateRandom", "generate_series",
        "generateSeries", "values", "null", "view", "viewIfPermitted", "merge", "format",
    )
)  # fmt: skip
"""Table functions that read only what the query or the store itself holds."""

HOST_CALLS = frozenset({"DISK", "CATBOOSTEVALUATE"})
"""Calls that reach the host without being table functions (a dynamic disk, a model file)."""

ENGINES = frozenset(
    {"MEMORY", "LOG", "TINYLOG", "STRIPELOG", "NULL", "SET", "JOIN", "BUFFER", "MERGE",
     "ATOMIC", "ORDINARY", "LAZY"}
)  # fmt: skip
"""Table and database engines besides the ``*MergeTree`` family that keep to the store."""

HOST_SETTINGS = frozenset(
    {"FORMAT_SCHEMA", "FORMAT_TEMPLATE_RESULTSET", "FORMAT_TEMPLATE_ROW", "OUTPUT_FORMAT_SCHEMA",
     "ALLOW_INTROSPECTION_FUNCTIONS"}
)  # fmt: skip
"""Settings that name host files (format schemas and templates) or open introspection."""


def _denied(message: str) -> ClickHouseError:
    return ClickHouseError(497, "ACCESS_DENIED", f"{message} (ACCESS_DENIED)")


def _name(token: Token) -> str:
    """A word's or quoted name's text, upper-cased, without quotes."""
    text = token.text[1:-1] if token.kind == "quoted" else token.text
    return text.decode("utf-8", errors="replace").upper()


def check_setting(name: str) -> None:
    """Refuse a setting that reaches the host (:data:`HOST_SETTINGS`)."""
    if name.upper() in HOST_SETTINGS:
        raise _denied(f"the setting {name.lower()} reaches the store host's files; not allowed")


def check_statement(sql: bytes, *, readonly: bool, table_functions: Collection[str]) -> None:
    """Refuse `sql` unless a client may run it (see the module's contract).

    ``table_functions`` are the engine's table function names, upper-cased; calling any of
    them outside :data:`TABLE_FUNCTIONS` is refused.
    """
    lexed = list(tokens(sql))
    words = [t for t in lexed if t.kind == "word" and t.depth == 0]
    first = lexed[0] if lexed else None
    if first is not None and first.kind != "open":
        allowed = READER_STATEMENTS if readonly else WRITER_STATEMENTS
        statement = first.text.decode("utf-8", errors="replace")
        if first.kind != "word" or statement not in WRITER_STATEMENTS | DENIED_STATEMENTS:
            raise ClickHouseError(
                62, "SYNTAX_ERROR", f"Syntax error: {statement} does not start a statement"
            )
        if statement not in allowed:
            who = "a read-only user" if readonly else "a client of this server"
            raise _denied(f"{statement} statements may not be run by {who}")
        if first.text == b"CREATE":
            kind = next(
                (w for w in words[1:] if w.text not in (b"OR", b"REPLACE", b"TEMPORARY")), None
            )
            if kind is None or kind.text.decode() not in CREATABLE:
                made = "nothing" if kind is None else kind.text.decode()
                raise _denied(f"CREATE {made} is not allowed: only {sorted(CREATABLE)}")
    creating = first is not None and first.text == b"CREATE"
    for i, (name, after) in enumerate(pairwise(lexed)):
        if name.text == b";" and after.text != b";":
            raise _denied("one statement per request")
        if after.text == b"(" and name.text == b"}":
            raise _denied("a query parameter may not name a called function")
        if after.text == b"(" and name.kind in ("word", "quoted"):
            called = _name(name)
            if called in HOST_CALLS or (
                called in table_functions and called not in TABLE_FUNCTIONS
            ):
                raise _denied(
                    f"{called.lower()}() reaches the store host's files, programs or network; "
                    f"allowed table functions: {sorted(TABLE_FUNCTIONS)}"
                )
        if creating and name.kind == "word" and name.text == b"ENGINE" and name.depth == 0:
            engine = lexed[i + 2] if after.text == b"=" and i + 2 < len(lexed) else after
            chosen = _name(engine)
            if chosen not in ENGINES and not chosen.endswith("MERGETREE"):
                raise _denied(f"ENGINE = {chosen} is not allowed")
    for token in lexed:
        if token.kind == "word":
            check_setting(token.text.decode())
