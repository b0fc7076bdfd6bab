"""The store server's allow-lists on tricky SQL: what the lexer must see through."""

from __future__ import annotations

import pytest

from fulmen.store._http_engine import ClickHouseError
from fulmen.store._sql_guard import check_setting, check_statement

# A few of the engine's table function names (the server reads them all from the engine).
ENGINE_TABLE_FUNCTIONS = frozenset(
    name.upper()
    for name in ("file", "url", "s3", "remote", "mysql", "executable", "input", "numbers",
                 "values", "view", "null", "merge", "generateRandom", "format", "dictionary")
)  # fmt: skip


def _check(sql: str, *, readonly: bool = False) -> None:
    check_statement(sql.encode(), readonly=readonly, table_functions=ENGINE_TABLE_FUNCTIONS)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd')",
        "select * from FILE('/etc/passwd')",
        "SELECT * FROM `file`('/etc/passwd')",
        "SELECT * FROM \"url\"('http://x')",
        "SELECT * FROM file/* a comment */('/etc/passwd')",
        "SELECT * FROM file -- a comment\n ('/etc/passwd')",
        "SELECT * FROM file\n\t('/etc/passwd')",
        "SELECT * FROM numbers(1) WHERE 1 IN (SELECT 1 FROM (SELECT * FROM s3('http://x')))",
        "SELECT [1, (SELECT count() FROM remote('h', db.t))]",
        "INSERT INTO FUNCTION file('x.tsv', 'TSV', 'a String') VALUES ('a')",
        "INSERT INTO TABLE FUNCTION url('http://x', 'TSV', 'a String') SELECT 'a'",
        "INSERT INTO t SELECT * FROM input('a String') FORMAT TSV",
        "CREATE TABLE t (a String) ENGINE = File(TSV)",
        "CREATE TABLE t (a String) ENGINE URL('http://x', TSV)",
        "CREATE TABLE t (a String) ENGINE = Distributed(c, db, t)",
        "CREATE TABLE t AS mysql('h', 'db', 't', 'u', 'p')",
        "CREATE DATABASE d ENGINE = MySQL('h', 'db', 'u', 'p')",
        "CREATE DICTIONARY d (a String) PRIMARY KEY a SOURCE(HTTP(url 'http://x')) LAYOUT(FLAT())",
        "CREATE OR REPLACE DICTIONARY d (a String) PRIMARY KEY a SOURCE(FILE(path '/x'))",
        "CREATE NAMED COLLECTION c AS url = 'http://x'",
        "SYSTEM SHUTDOWN",
        "system reload config",
        "ATTACH TABLE t FROM '/var/lib/x' (a String) ENGINE = MergeTree ORDER BY a",
        "BACKUP TABLE t TO File('/tmp/x')",
        "SELECT executable('id', 'TSV', 'a String')",
        "SELECT * FROM {f:Identifier}('/etc/passwd')",
        "SELECT 1; SELECT * FROM file('/etc/passwd')",
        "SELECT 1 SETTINGS format_schema = '/etc/passwd'",
        "SET format_template_row = '/etc/passwd'",
        "CREATE TABLE t (a String) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = "
        "local, path = '/')",
        # What a lexer that ends a comment at the first */ or ignores heredocs would miss.
        "SELECT /* /* */ 'x */, file('/etc/passwd') --'",
        "SELECT $$ ' $$, file('/etc/passwd'), ' '",
        "SELECT $a$ $$ $a$, file('/etc/passwd')",
    ],
)
def test_the_host_is_out_of_reach_for_the_writer(sql: str) -> None:
    with pytest.raises(ClickHouseError) as refused:
        _check(sql)
    assert (refused.value.name, refused.value.http_status) == ("ACCESS_DENIED", 403)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM numbers(10)",
        "SELECT * FROM generateRandom('a UInt8', 1) LIMIT 1",
        "SELECT * FROM values('a UInt8', 1, 2)",
        "SELECT * FROM view(SELECT 1)",
        "SELECT * FROM merge(currentDatabase(), '^spans')",
        "SELECT 'file(', \"file\", `url` FROM t",  # names and strings, not calls
        "SELECT file_name, url FROM t WHERE path = 'file(/etc/passwd)'",
        "SELECT engine FROM system.tables",
        "INSERT INTO t VALUES ('a', 1)",
        "INSERT INTO t (a, b) FORMAT Arrow",
        "CREATE TABLE t (a String, url String) ENGINE = ReplicatedMergeTree ORDER BY a",
        "CREATE TABLE IF NOT EXISTS t (a String) ENGINE = Memory",
        "CREATE DATABASE IF NOT EXISTS fulmen ENGINE = Atomic",
        "CREATE MATERIALIZED VIEW v ENGINE = SummingMergeTree ORDER BY a AS SELECT a FROM t",
        "ALTER TABLE t ADD COLUMN b String",
        "DROP TABLE t",
        "(SELECT 1)",
        "SELECT 1;",
        "SELECT {n:UInt8} + 1",
    ],
)
def test_the_store_itself_is_in_reach_for_the_writer(sql: str) -> None:
    _check(sql)


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "WITH 1 AS a SELECT a", "SHOW TABLES", "DESCRIBE TABLE t", "DESC t",
     "EXPLAIN SELECT 1", "EXISTS TABLE t", "(SELECT 1) UNION ALL (SELECT 2)"],
)  # fmt: skip
def test_readers_may_read(sql: str) -> None:
    _check(sql, readonly=True)


@pytest.mark.parametrize(
    "sql",
    ["DROP TABLE t", "drop table t", "/* hi */ TRUNCATE t", "INSERT INTO t VALUES (1)",
     "ALTER TABLE t DELETE WHERE 1", "CREATE TABLE t (a UInt8) ENGINE = Memory",
     "SET readonly = 0", "OPTIMIZE TABLE t FINAL", "RENAME TABLE t TO u", "KILL QUERY WHERE 1",
     "SELECT * FROM file('/etc/passwd')"],
)  # fmt: skip
def test_readers_may_not_write(sql: str) -> None:
    with pytest.raises(ClickHouseError, match="ACCESS_DENIED"):
        _check(sql, readonly=True)


def test_settings_that_name_host_files_are_refused() -> None:
    check_setting("max_threads")
    with pytest.raises(ClickHouseError, match="format_schema"):
        check_setting("Format_Schema")


def test_a_word_that_starts_no_statement_is_a_syntax_error() -> None:
    with pytest.raises(ClickHouseError) as refused:
        _check("SELEC 1")
    assert (refused.value.name, refused.value.http_status) == ("SYNTAX_ERROR", 400)
