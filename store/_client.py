"""One clickhouse-connect client for both targets: embedded chDB or a ClickHouse server."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from fulmen.errors import FulmenError
from fulmen.store._settings import StoreSettings

T = TypeVar("T")


class StoreUnavailable(FulmenError):
    """The store cannot be opened: the embedded one is owned by another process, or the
    server does not answer or refuses the user. The message says what to set."""


def connect(settings: StoreSettings) -> Client:
    """A client for `settings`: the chDB engine in this process on `path` (only one process
    may open it: others go through `fulmen store serve`), or the server at `url`. Raises
    `StoreUnavailable` when the store is locked by another process, or the server does not
    answer or refuses the user."""
    if settings.url is None:
        return _embedded(settings.path)
    url = urlparse(settings.url)
    try:
        with _no_driver_warning():
            return clickhouse_connect.get_client(
                host=url.hostname or "127.0.0.1",
                port=url.port or (8443 if url.scheme == "https" else 8123),
                secure=url.scheme == "https",
                username=settings.username,
                password=settings.password.get_secret_value(),
            )
    except OperationalError as exc:
        raise StoreUnavailable(
            f"the store server at {settings.url} does not answer: start it "
            "(`fulmen store serve`), or set FULMEN_STORE__URL to one that runs"
        ) from exc
    except DatabaseError as exc:
        if "AUTHENTICATION_FAILED" not in str(exc):
            raise
        raise StoreUnavailable(
            f"the store server at {settings.url} refused user {settings.username!r}: set "
            "FULMEN_STORE__USERNAME and FULMEN_STORE__PASSWORD to one of its users"
        ) from exc


def _embedded(path: Path) -> Client:
    path.mkdir(parents=True, exist_ok=True)
    return open_embedded(
        path, lambda: clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")
    )


def open_embedded(path: Path, opener: Callable[[], T]) -> T:
    """`opener()`, which opens the chDB engine on `path`; raises `StoreUnavailable` when it
    fails because another process holds the directory."""
    with _stderr_kept_unless_locked():
        try:
            return opener()
        except Exception as exc:
            if not _locked_elsewhere(path):
                raise
            raise StoreUnavailable(
                f"the store at {path} is open in another process (`fulmen store serve`, or "
                "another fulmen command using it embedded): set FULMEN_STORE__URL to that "
                "server (http://127.0.0.1:8123 by default), or stop the other process"
            ) from exc


def _locked_elsewhere(path: Path) -> bool:
    """Whether another process holds chDB's lock on `path` (its `status` file, flock'ed by
    the engine that owns the directory)."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def _stderr_kept_unless_locked() -> Iterator[None]:
    """The engine writes its own error to file descriptor 2 when the directory is locked,
    before Python sees it: hold back what it writes while it opens, and pass it on unless
    the open failed for that lock (then `StoreUnavailable` says it in one line)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        locked = False
        try:
            yield
        except StoreUnavailable:
            locked = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not locked:
                held.seek(0)
                written = held.read()
                if written:
                    os.write(2, written)


class _ThisThreadsDriverWarning(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.thread == self.thread and record.levelno == logging.WARNING)


@contextlib.contextmanager
def _no_driver_warning() -> Iterator[None]:
    """The driver logs a warning of its own before raising for a server that does not
    answer; `StoreUnavailable` says it instead (other threads' warnings pass)."""
    driver = logging.getLogger("clickhouse_connect.driver._backend.http_sync")
    quiet = _ThisThreadsDriverWarning()
    driver.addFilter(quiet)
    try:
        yield
    finally:
        driver.removeFilter(quiet)
