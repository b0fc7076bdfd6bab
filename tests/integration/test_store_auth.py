"""Who may use `fulmen store serve`, and for what: a real server process, with
clickhouse-connect and raw HTTP as its clients."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

pytestmark = pytest.mark.integration
FULMEN = [sys.executable, "-m", "fulmen.cli"]
WRITER, READER = "w-secret", "r-secret"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _env(path: Path, **settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    return clean | {"FULMEN_STORE__PATH": str(path)} | settings


def _start(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """A `fulmen store serve` process, its URL, and what it printed until it listened."""
    port = _free_port()
    server = subprocess.Popen(
        [*FULMEN, "store", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    printed = ""
    while "LightningStore" not in printed:  # printed once it listens
        line = server.stdout.readline()
        assert line, printed
        printed += line
    return server, f"http://127.0.0.1:{port}", printed


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store server with a writer (`default`) and a reader (`analyst`): its URL."""
    path = tmp_path_factory.mktemp("auth") / "store"
    readers = json.dumps({"analyst": READER})
    env = _env(path, FULMEN_STORE__PASSWORD=WRITER, FULMEN_STORE__READERS=readers)
    server, url, _ = _start(env)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _client(url: str, user: str, password: str) -> Client:
    port = int(url.rsplit(":", 1)[1])
    return clickhouse_connect.get_client(
        host="127.0.0.1", port=port, username=user, password=password
    )


def _post(url: str, sql: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """POST `sql`: (status, X-ClickHouse-Exception-Code, body)."""
    request = urllib.request.Request(url, data=sql.encode(), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.headers.get("X-ClickHouse-Exception-Code", ""), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-ClickHouse-Exception-Code", ""), error.read()


def test_requests_without_credentials_or_with_a_wrong_password_are_refused(served: str) -> None:
    status, code, body = _post(served, "DROP TABLE fulmen.spans")
    assert (status, code) == (401, "194")
    assert body.startswith(b"Code: 194. DB::Exception: Authentication required")
    status, code, body = _post(
        served,
        "DROP TABLE fulmen.spans",
        {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "no"},
    )
    assert (status, code) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body
    with pytest.raises(DatabaseError, match="AUTHENTICATION_FAILED"):
        _client(served, "default", "nope")
    assert _client(served, "default", WRITER).command("EXISTS TABLE fulmen.spans") == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
        "INSERT INTO FUNCTION file('written.tsv', 'TSV', 'x String') VALUES ('x')",
        "SELECT * FROM FiLe /* a comment */ ('/etc/passwd', 'LineAsString')",
        "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
        "SELECT * FROM numbers(1) WHERE number IN (SELECT 1 FROM s3('http://127.0.0.1:1/x'))",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "CREATE TABLE fulmen.leak (x String) ENGINE = File(TSV)",
        "CREATE DICTIONARY fulmen.d (x String) PRIMARY KEY x SOURCE(FILE(path '/etc/passwd' "
        "format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
        "SYSTEM SHUTDOWN",
        "SELECT 1 SETTINGS format_schema = '/etc/passwd'",
    ],
)
def test_the_writer_may_not_reach_the_host(served: str, sql: str) -> None:
    writer = _client(served, "default", WRITER)
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        writer.command(sql)
    assert writer.command("SELECT count() FROM numbers(3)") == 3  # allowed table functions


def test_readers_only_read(served: str) -> None:
    reader = _client(served, "analyst", READER)
    assert reader.command("SELECT count() FROM fulmen.spans") == 0
    for sql in (
        "DROP TABLE fulmen.spans",
        "TRUNCATE TABLE fulmen.spans",
        "INSERT INTO fulmen.spans SELECT * FROM fulmen.spans",
        "OPTIMIZE TABLE fulmen.spans",
        "SET readonly = 0",
    ):
        with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
            reader.command(sql)
    assert _client(served, "default", WRITER).command("EXISTS TABLE fulmen.spans") == 1


def test_no_password_is_refused_and_no_auth_only_on_loopback(tmp_path: Path) -> None:
    for args in ([], ["--host", "0.0.0.0", "--insecure-no-auth"]):
        done = subprocess.run(
            [*FULMEN, "store", "serve", "--port", str(_free_port()), *args],
            env=_env(tmp_path / "store"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: "), done.stderr
        expected = "--insecure-no-auth" if not args else "not a loopback address"
        assert expected in done.stderr
    assert not (tmp_path / "store").exists()  # refused before the store was touched


def test_the_development_flag_admits_anonymous_requests_and_says_so(tmp_path: Path) -> None:
    server, url, printed = _start(_env(tmp_path / "store"), "--insecure-no-auth")
    try:
        assert "without credentials" in printed, printed
        assert "insecure_no_auth" in printed
        assert _post(url, "SELECT 41 + 1")[::2] == (200, b"42\n")
        status, code, _ = _post(url, "SELECT * FROM file('/etc/passwd', 'LineAsString')")
        assert (status, code) == (403, "497")
    finally:
        server.terminate()
        server.wait(timeout=30)
