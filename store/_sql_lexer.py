"""Just enough ClickHouse SQL lexing to split a request's statement the way a server does.

:func:`parse_statement` finds, without a full SQL parser, the output ``FORMAT`` clause of a
query and, for ``INSERT … FORMAT <fmt>``, the data that follows the format name. It skips
strings, quoted names, comments and brackets, and flags ``INTO OUTFILE`` and
``FROM INFILE``, which a client may not use. Failures are :class:`ClickHouseError`
(SYNTAX_ERROR for an empty query, BAD_ARGUMENTS for SQL that is not UTF-8).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from fulmen.store._http_engine import ClickHouseError

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "quoted", "open", "close", "other"]
    text: bytes  # upper-cased for words
    start: int
    end: int
    depth: int


def _tokens(sql: bytes) -> Iterator[_Token]:
    """ClickHouse-ish lexing, enough to find clauses: strings, quoted names, comments."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        c = sql[i : i + 1]
        if c in b" \t\r\n\f\v":
            i += 1
        elif sql.startswith(b"--", i) or sql.startswith(b"# ", i) or sql.startswith(b"#!", i):
            newline = sql.find(b"\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith(b"/*", i):
            close = sql.find(b"*/", i + 2)
            i = n if close < 0 else close + 2
        elif c in (b"'", b'"', b"`"):
            j = i + 1
            while j < n:
                if sql[j : j + 1] == b"\\":
                    j += 2
                elif sql[j : j + 1] == c:
                    if sql[j + 1 : j + 2] == c:  # a doubled quote
                        j += 2
                    else:
                        break
                else:
                    j += 1
            kind: Literal["word", "quoted", "open", "close", "other"] = "quoted"
            yield _Token(kind, sql[i : j + 1], i, min(j + 1, n), depth)
            i = j + 1
        elif c in (b"(", b"["):
            yield _Token("open", c, i, i + 1, depth)
            depth += 1
            i += 1
        elif c in (b")", b"]"):
            depth = max(depth - 1, 0)
            yield _Token("close", c, i, i + 1, depth)
            i += 1
        elif (word := _WORD.match(sql, i)) is not None:
            yield _Token("word", word.group().upper(), i, word.end(), depth)
            i = word.end()
        else:
            yield _Token("other", c, i, i + 1, depth)
            i += 1


@dataclass(frozen=True)
class Statement:
    """One request's SQL, split the way ClickHouse splits it.

    For an ``INSERT … FORMAT <fmt>`` with data, ``head`` is the statement before its
    ``SETTINGS``/``FORMAT`` clauses, ``tail`` those clauses (without FORMAT), and ``data``
    the bytes after the format name. Otherwise ``data`` is None and ``head`` the whole SQL.
    """

    head: bytes
    fmt: str | None
    data: bytes | None = None
    tail: bytes = b""
    forbidden: str | None = field(default=None)


def _format_name(token: _Token) -> str:
    text = token.text
    if token.kind == "quoted":
        text = text[1:-1]
    return text.decode("utf-8", errors="replace")


def parse_statement(sql: bytes) -> Statement:
    """Find the FORMAT clause (and an INSERT's data) without a full SQL parser."""
    tokens = _tokens(sql)
    first = next(tokens, None)
    if first is None:
        raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
    seen: list[_Token] = [first]
    is_insert = first.kind == "word" and first.text == b"INSERT"
    forbidden: str | None = None
    settings_at: int | None = None
    for token in tokens:
        previous = seen[-1]
        seen.append(token)
        if token.depth or token.kind != "word":
            continue
        if previous.kind == "word" and previous.depth == 0:
            pair = (previous.text, token.text)
            if pair == (b"INTO", b"OUTFILE"):
                forbidden = "INTO OUTFILE is not allowed"
            elif pair == (b"FROM", b"INFILE"):
                forbidden = "FROM INFILE is not allowed"
        if not is_insert:
            continue
        if token.text in (b"VALUES", b"SELECT", b"WITH") and settings_at is None:
            break  # data inline in the SQL, or no data at all
        if token.text == b"SETTINGS" and settings_at is None:
            settings_at = token.start
        if token.text == b"FORMAT":
            name = next(tokens, None)
            if name is None or name.kind not in ("word", "quoted"):
                break
            data_at = name.end
            while sql[data_at : data_at + 1] in (b" ", b"\t", b"\f", b"\v"):
                data_at += 1
            if sql[data_at : data_at + 1] == b"\r":
                data_at += 1
            if sql[data_at : data_at + 1] == b"\n":
                data_at += 1
            cut = token.start if settings_at is None else settings_at
            return Statement(
                head=sql[:cut],
                tail=sql[cut : token.start],
                fmt=_format_name(name),
                data=sql[data_at:],
                forbidden=forbidden,
            )
    if is_insert:
        return Statement(head=sql, fmt=None, forbidden=forbidden)
    return Statement(head=sql, fmt=_output_format(seen), forbidden=forbidden)


def _output_format(tokens: list[_Token]) -> str | None:
    """The last top-level ``FORMAT <name>`` that ends the query or precedes SETTINGS."""
    fmt: str | None = None
    for i, token in enumerate(tokens[:-1]):
        if token.kind != "word" or token.depth or token.text != b"FORMAT":
            continue
        name = tokens[i + 1]
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        if name.kind not in ("word", "quoted"):
            continue
        if after is None or after.text in (b";", b"SETTINGS"):
            fmt = _format_name(name)
    return fmt


# Table and scalar functions that reach the store host's files, processes or network.
_HOST_ACCESS = frozenset(
    name.upper().encode()
    for name in (
        "file", "fileCluster", "url", "urlCluster", "s3", "s3Cluster", "gcs", "oss", "cosn",
        "hdfs", "hdfsCluster", "azureBlobStorage", "azureBlobStorageCluster", "remote",
        "remoteSecure", "cluster", "clusterAllReplicas", "mysql", "postgresql", "sqlite",
        "mongodb", "redis", "jdbc", "odbc", "executable", "executablePool", "input", "iceberg",
        "icebergS3", "icebergAzure", "icebergHDFS", "icebergLocal", "deltaLake", "hudi",
        "python", "loop",
    )
)  # fmt: skip


def host_access_calls(sql: bytes) -> list[str]:
    """Names of calls in `sql` to functions that read the host's files, run programs or open
    connections (`file(...)`, `url(...)`, `remote(...)`, …), anywhere in the statement."""
    return [
        name.text.decode().lower()
        for name, bracket in pairwise(_tokens(sql))
        if name.kind == "word" and name.text in _HOST_ACCESS and bracket.text == b"("
    ]


def sql_text(sql: bytes) -> str:
    """``sql`` as text, or a BAD_ARGUMENTS :class:`ClickHouseError` if it is not UTF-8."""
    try:
        return sql.decode()
    except UnicodeDecodeError as exc:
        raise ClickHouseError(36, "BAD_ARGUMENTS", f"The query is not UTF-8: {exc}") from exc
