"""The `fulmen` command ends a user's mistake with one line that says what to set."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from fulmen.cli import app
from fulmen.kafka import BrokerUnreachable, KafkaSettings, ensure_topics


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _one_error_line(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"FULMEN_STORE__DEDUP_WINDOW_BLOCKS": "many"},
            "bad setting FULMEN_STORE__DEDUP_WINDOW_BLOCKS='many': Input should be a valid integer",
        ),
        ({"FULMEN_TRANSPORT": "pigeon"}, "bad setting FULMEN_TRANSPORT='pigeon'"),
        ({"FULMEN_STORE__READERS": "{analyst: x"}, "bad FULMEN_* setting: error parsing value"),
    ],
)
def test_a_bad_setting_is_named_with_its_variable(env: dict[str, str], says: str) -> None:
    assert says in _one_error_line(env, "sql", "SELECT 1")


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["store", "migrate"], ["dashboard"]])
def test_a_store_server_that_does_not_answer_is_one_line(command: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    line = _one_error_line({"FULMEN_STORE__URL": url}, *command)
    assert line == (
        f"error: the store server at {url} does not answer: start it (`fulmen store serve`), "
        "or set FULMEN_STORE__URL to one that runs"
    )


def test_a_broker_that_does_not_answer_names_the_setting() -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(BrokerUnreachable, match="FULMEN_KAFKA__BOOTSTRAP_SERVERS") as raised:
        ensure_topics(KafkaSettings(bootstrap_servers=servers), ["t"], partitions=1, wait_s=1.0)
    assert servers in str(raised.value)
    assert "\n" not in str(raised.value)
