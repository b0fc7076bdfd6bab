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
from typing import Literal

from fulmen.store._http_engine import ClickHouseError

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_$]*")
_HEREDOC = re.compile(rb"\$([A-Za-z0-9_]*)\$")

TokenKind = Literal["word", "quoted", "open", "close", "other"]


@dataclass(frozen=True)
class Token:
    """One lexeme: ``word`` (upper-cased), ``quoted`` (a string, a quoted name or a heredoc,
    quotes included), an ``open``/``close`` bracket, or one ``other`` byte."""

    kind: TokenKind
    text: bytes
    start: int
    end: int
    depth: int


def _comment_end(sql: bytes, i: int) -> int:
    """Where the ``/* … */`` comment at ``i`` ends; ClickHouse nests them."""
    depth, j, n = 0, i, len(sql)
    while j < n:
        if sql.startswith(b"/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith(b"*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return n


def tokens(sql: bytes) -> Iterator[Token]:
    """ClickHouse's lexing, as far as it matters to find clauses and calls: strings, quoted
    names, heredocs (``$tag$ … $tag$``), comments (``--``, ``#``, nested ``/* */``)."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        c = sql[i : i + 1]
        if c in b" \t\r\n\f\v":
            i += 1
        elif sql.startswith(b"--", i) or sql.startswith(b"# ", i) or sql.startswith(b"#!", i):
            newline = sql.find(b"\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith(b"/*", i):
            i = _comment_end(sql, i)
        elif c == b"$" and (heredoc := _HEREDOC.match(sql, i)) is not None:
            close = sql.find(heredoc.group(), heredoc.end())
            end = n if close < 0 else close + len(heredoc.group())
            yield Token("quoted", sql[i:end], i, end, depth)
            i = end
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
            yield Token("quoted", sql[i : j + 1], i, min(j + 1, n), depth)
            i = j + 1
        elif c in (b"(", b"["):
            yield Token("open", c, i, i + 1, depth)
            depth += 1
            i += 1
        elif c in (b")", b"]"):
            depth = max(depth - 1, 0)
            yield Token("close", c, i, i + 1, depth)
            i += 1
        elif (word := _WORD.match(sql, i)) is not None:
            yield Token("word", word.group().upper(), i, word.end(), depth)
            i = word.end()
        else:
            yield Token("other", c, i, i + 1, depth)
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


def _format_name(token: Token) -> str:
    text = token.text
    if token.kind == "quoted":
        text = text[1:-1]
    return text.decode("utf-8", errors="replace")


def parse_statement(sql: bytes) -> Statement:
    """Find the FORMAT clause (and an INSERT's data) without a full SQL parser."""
    stream = tokens(sql)
    first = next(stream, None)
    if first is None:
        raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
    seen: list[Token] = [first]
    is_insert = first.kind == "word" and first.text == b"INSERT"
    forbidden: str | None = None
    settings_at: int | None = None
    for token in stream:
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
            name = next(stream, None)
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


def _output_format(tokens: list[Token]) -> str | None:
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


def sql_text(sql: bytes) -> str:
    """``sql`` as text, or a BAD_ARGUMENTS :class:`ClickHouseError` if it is not UTF-8."""
    try:
        return sql.decode()
    except UnicodeDecodeError as exc:
        raise ClickHouseError(36, "BAD_ARGUMENTS", f"The query is not UTF-8: {exc}") from exc
