"""The store server speaks ClickHouse's HTTP protocol to other processes.

A :class:`StoreServer` owns chDB in this test process (on the session's engine path: chDB
opens one path per process), each test in a database of its own; clickhouse-connect runs in
a separate Python process (chDB allows one process per data directory, so that is the case
the server exists for), and raw HTTP requests come from ``urllib``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fulmen.store import StoreServer, StoreServerError, StoreUser
from fulmen.store._http_engine import ClickHouseError, Engine

USERS = {
    "writer": StoreUser(password="w-secret"),
    "reader": StoreUser(password="r-secret", readonly=True),
}


@dataclass(frozen=True)
class Target:
    """A running server and the database this test works in."""

    server: StoreServer
    database: str

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def running_server(chdb_path: Path) -> Iterator[StoreServer]:
    with StoreServer(chdb_path, users=USERS) as running:
        yield running


@pytest.fixture
def server(running_server: StoreServer) -> Target:
    target = Target(running_server, f"h_{uuid.uuid4().hex[:12]}")
    assert http(target, f"CREATE DATABASE {target.database}", body=b" ", database=None)[0] == 200
    return target


def run_client(server: Target, *parts: str) -> dict[str, Any]:
    """Run ``parts`` in a fresh interpreter with ``client``/``reader`` connected; its
    ``out`` dict comes back as JSON."""
    script = (
        textwrap.dedent(
            """
        import datetime, json, sys
        import clickhouse_connect, pandas as pd, pyarrow as pa
        from clickhouse_connect.driver.exceptions import DatabaseError
        port, database = int(sys.argv[1]), sys.argv[2]
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=port, username="writer", password="w-secret",
            database=database)
        reader = clickhouse_connect.get_client(
            host="127.0.0.1", port=port, username="reader", password="r-secret",
            database=database)
        out = {}
        """
        )
        + "".join(textwrap.dedent(part) for part in parts)
        + "\nprint(json.dumps(out, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(server.port), server.database],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def http(
    server: Target,
    query: str | None = None,
    *,
    body: bytes | None = None,
    user: tuple[str, str] = ("writer", "w-secret"),
    params: dict[str, str] | None = None,
    database: str | None = "",
) -> tuple[int, dict[str, str], bytes]:
    """One raw request, authenticated with HTTP Basic, as curl would send it; in the test's
    database unless `database` is None."""
    query_params = dict(params or {})
    if database is not None:
        query_params["database"] = database or server.database
    if query is not None:
        query_params["query"] = query
    url = f"{server.url}/?{urllib.parse.urlencode(query_params)}"
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


CREATE_EVENTS = """
    client.command(
        "CREATE TABLE events (id UInt64, attrs Map(String, String), tags Array(String),"
        " at DateTime64(6, 'UTC'), kind LowCardinality(String), reward Nullable(Float64))"
        " ENGINE = MergeTree ORDER BY id"
        " SETTINGS non_replicated_deduplication_window = 100")
    columns = ["id", "attrs", "tags", "at", "kind", "reward"]
    at = datetime.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=datetime.timezone.utc)
"""


def test_clickhouse_connect_round_trip(server: Target) -> None:
    out = run_client(
        server,
        CREATE_EVENTS,
        """
        client.insert("events", [
            [1, {"model": "m1"}, ["a", "b"], at, "llm", None],
            [2, {}, [], at, "tool", 0.5],
        ], column_names=columns)
        client.insert_arrow("events", pa.table({
            "id": pa.array(range(100, 1100), pa.uint64()),
            "kind": pa.array(["reward"] * 1000),
            "reward": pa.array([float(i) for i in range(1000)]),
            "at": pa.array([at] * 1000, pa.timestamp("us", tz="UTC")),
        }))
        client.insert_df("events", pd.DataFrame({
            "id": [5000, 5001], "kind": ["df", "df"], "reward": [None, 2.0],
            "tags": [["x"], []], "attrs": [{"k": "v"}, {}], "at": [at, at],
        }))
        out["protocol_version"] = client.protocol_version
        out["rows"] = client.query(
            "SELECT id, attrs, tags, at, kind, reward FROM events WHERE id < 10 ORDER BY id"
        ).result_rows
        table = client.query_arrow("SELECT * FROM events ORDER BY id")
        out["arrow_rows"] = table.num_rows
        out["arrow_kind_type"] = str(table.schema.field("kind").type)
        df = client.query_df("SELECT id, reward, kind FROM events WHERE kind = 'df' ORDER BY id")
        out["df"] = [
            [row.id, None if pd.isna(row.reward) else row.reward, row.kind]
            for row in df.itertuples()
        ]
        out["count"] = client.command("SELECT count() FROM events")
        out["sum"] = client.command("SELECT sum(reward) FROM events WHERE kind = 'reward'")
        out["bound"] = client.query(
            "SELECT {tag:String}, {ids:Array(UInt64)}", parameters={"tag": "a\\tb", "ids": [1, 2]}
        ).result_rows
        """,
    )
    assert out["protocol_version"] == 0  # chDB's Native has no block-info prefix
    assert out["rows"] == [
        [1, {"model": "m1"}, ["a", "b"], "2025-03-04 05:06:07.891011", "llm", None],
        [2, {}, [], "2025-03-04 05:06:07.891011", "tool", 0.5],
    ]
    assert out["arrow_rows"] == out["count"] == 1004
    assert out["arrow_kind_type"] in ("string", "dictionary<values=string, indices=int32>")
    assert out["df"] == [[5000, None, "df"], [5001, 2.0, "df"]]
    assert out["sum"] == sum(range(1000))
    assert out["bound"] == [["a\tb", [1, 2]]]


def test_replayed_insert_with_the_same_token_is_deduplicated(server: Target) -> None:
    out = run_client(
        server,
        """
        client.command(
            "CREATE TABLE dedup (id UInt64, v String) ENGINE = MergeTree ORDER BY id"
            " SETTINGS non_replicated_deduplication_window = 100")
        batch = pa.table({"id": pa.array([1, 2, 3], pa.uint64()), "v": ["a", "b", "c"]})
        for token in ("topic-0-0-2", "topic-0-0-2", "topic-0-3-5"):
            client.insert_arrow("dedup", batch, settings={"insert_deduplication_token": token})
        rows = [[7, "x"]]
        for _ in range(2):
            client.insert("dedup", rows, settings={"insert_deduplication_token": "rows-1"})
        out["count"] = client.command("SELECT count() FROM dedup")
        """,
    )
    assert out["count"] == 3 + 3 + 1


def test_readonly_user_reads_but_cannot_write(server: Target) -> None:
    out = run_client(
        server,
        """
        client.command("CREATE TABLE guarded (id UInt64) ENGINE = MergeTree ORDER BY id")
        client.insert("guarded", [[1], [2]])
        out["select"] = reader.query("SELECT count() FROM guarded").result_rows
        for name, attempt in (
            ("insert", lambda: reader.insert("guarded", [[3]])),
            ("drop", lambda: reader.command("DROP TABLE guarded")),
        ):
            try:
                attempt()
                out[name] = "succeeded"
            except DatabaseError as error:
                out[name] = str(error)
        out["count"] = client.command("SELECT count() FROM guarded")
        try:
            clickhouse_connect.get_client(
                host="127.0.0.1", port=port, username="writer", password="wrong")
            out["wrong_password"] = "accepted"
        except DatabaseError as error:
            out["wrong_password"] = str(error)
        """,
    )
    assert out["select"] == [[2]]
    for name in ("insert", "drop"):
        assert "Code: 497" in out[name], out[name]
        assert "may not be run by a read-only user" in out[name]
    assert out["count"] == 2
    assert "AUTHENTICATION_FAILED" in out["wrong_password"]


def test_the_engine_runs_readers_readonly_too(chdb_path: Path) -> None:
    """Behind the statement allow-list, the engine itself refuses a reader's writes."""
    engine = Engine(chdb_path)
    try:
        with pytest.raises(ClickHouseError) as refused:
            engine.run(
                "CREATE TABLE default.never (a UInt8) ENGINE = Memory",
                fmt="TabSeparated", readonly=1, settings={}, params={}, database=None,
            )  # fmt: skip
        assert (refused.value.code, refused.value.name) == (164, "READONLY")
    finally:
        engine.close()


def test_curl_style_requests(server: Target) -> None:
    status, headers, body = http(server, "SELECT 1 AS one FORMAT JSON")
    assert status == 200
    assert json.loads(body)["data"] == [{"one": 1}]
    assert headers["X-ClickHouse-Format"] == "JSON"
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Query-Id"]

    status, _, body = http(server, "SELECT 2", params={"default_format": "CSV"})
    assert (status, body) == (200, b"2\n")

    create = b"CREATE TABLE csv_in (id UInt32, name String) ENGINE = MergeTree ORDER BY id"
    assert http(server, body=create)[0] == 200
    status, headers, _ = http(server, body=b"INSERT INTO csv_in FORMAT CSV\n1,one\n2,two\n")
    assert status == 200
    assert json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    # The statement in the URL, the data in the body.
    status, _, _ = http(server, "INSERT INTO csv_in FORMAT TSV", body=b"3\tthree\n")
    assert status == 200
    # A failed insert writes nothing.
    status, headers, body = http(server, "INSERT INTO csv_in FORMAT CSV", body=b"4,four\nx,y\n")
    assert status != 200
    assert headers["X-ClickHouse-Exception-Code"] == "27"
    assert body.startswith(b"Code: 27. DB::Exception:")
    status, _, body = http(server, "SELECT id, name FROM csv_in ORDER BY id FORMAT TSV")
    assert (status, body) == (200, b"1\tone\n2\ttwo\n3\tthree\n")
    # GET is readonly, as on a server.
    status, headers, _ = http(server, "DROP TABLE csv_in")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164")

    ping = urllib.request.urlopen(f"{server.url}/ping", timeout=10)
    assert ping.read() == b"Ok.\n"


def test_errors_carry_clickhouse_codes(server: Target) -> None:
    status, headers, body = http(server, "SELECT no_such_column")
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "47"
    assert body.startswith(b"Code: 47. DB::Exception:")
    assert b"UNKNOWN_IDENTIFIER" in body

    status, headers, body = http(server, "SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")

    status, headers, body = http(server, "SELECT 1", user=("writer", "nope"))
    assert status == 403
    assert headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"AUTHENTICATION_FAILED" in body
    assert http(server, "SELECT 1", user=("nobody", ""))[0] == 403

    status, headers, _ = http(server, "SELECT 1 INTO OUTFILE '/tmp/x'")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (501, "48")


def test_anonymous_requests_only_with_insecure_no_auth_on_loopback(chdb_path: Path) -> None:
    with pytest.raises(StoreServerError, match="no password"):
        StoreServer(chdb_path, users={"writer": StoreUser(password="")})
    with pytest.raises(StoreServerError, match="at least one user"):
        StoreServer(chdb_path, users={})
    with pytest.raises(StoreServerError, match="not a loopback address"):
        StoreServer(chdb_path, host="0.0.0.0", users={}, insecure_no_auth=True)
    with StoreServer(chdb_path, users={}, insecure_no_auth=True) as running:
        request = urllib.request.Request(f"{running.url}/?query=SELECT+41+%2B+1", method="GET")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert (response.status, response.read()) == (200, b"42\n")


def test_a_request_without_credentials_is_refused(server: Target) -> None:
    request = urllib.request.Request(f"{server.url}/?query=SELECT+1", method="GET")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert (refused.value.code, refused.value.headers["X-ClickHouse-Exception-Code"]) == (
        401,
        "194",
    )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT count() FROM (SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String'))",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "select * from FILE('/etc/hostname', 'LineAsString')",
    ],
)
@pytest.mark.parametrize("user", [("reader", "r-secret"), ("writer", "w-secret")])
def test_no_user_can_reach_the_host(server: Target, query: str, user: tuple[str, str]) -> None:
    status, headers, body = http(server, query, user=user)
    assert status == 403
    assert headers["X-ClickHouse-Exception-Code"] == "497"
    assert b"reaches the store host" in body


def test_strings_that_name_host_functions_are_fine(server: Target) -> None:
    status, _, body = http(
        server, "SELECT 'file(1)' AS s, `url` FROM (SELECT 1 AS `url`)", user=("reader", "r-secret")
    )
    assert status == 200, body
