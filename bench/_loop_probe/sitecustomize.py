"""Event-loop callback counts of a `fulmen worker`, for `python -m bench.worker_profile
--loop-counts`, which puts this folder on the worker's PYTHONPATH.

When FULMEN_LOOP_COUNTS names a file prefix, every callback asyncio runs in the process is
counted by what it runs (a task by its chain of awaited coroutines, so a task woken over and
over names the await that wakes it), and so are the selector's polls by their timeout. The
counts go to `<prefix>.<pid>.json` every second. Any other process is left alone.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("FULMEN_LOOP_COUNTS") and "worker" in sys.argv:
    import asyncio.events
    import collections
    import json
    import selectors
    import threading
    import time
    from typing import Any

    _counts: collections.Counter[str] = collections.Counter()
    _run = asyncio.events.Handle._run
    _select = selectors.EpollSelector.select

    def _awaits(coroutine: Any) -> str:
        names = []
        for _ in range(8):
            if coroutine is None:
                break
            names.append(getattr(coroutine, "__qualname__", type(coroutine).__name__))
            coroutine = getattr(coroutine, "cr_await", None) or getattr(
                coroutine, "gi_yieldfrom", None
            )
        return " > ".join(names)

    def _name(callback: Any) -> str:
        owner = getattr(callback, "__self__", None)
        if owner is not None and hasattr(owner, "get_coro"):
            return "task " + _awaits(owner.get_coro())
        function = getattr(callback, "func", callback)  # functools.partial
        return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '?')}"

    def _counted_run(self: asyncio.events.Handle) -> None:
        _counts[f"{threading.current_thread().name}: {_name(self._callback)}"] += 1
        _run(self)

    def _counted_select(self: selectors.EpollSelector, timeout: float | None = None) -> Any:
        wait = "none" if timeout is None else "0" if timeout == 0 else "> 0"
        _counts[f"{threading.current_thread().name}: poll, timeout {wait}"] += 1
        return _select(self, timeout)

    def _dump() -> None:
        path = f"{os.environ['FULMEN_LOOP_COUNTS']}.{os.getpid()}.json"
        while True:
            time.sleep(1)
            try:
                snapshot = dict(_counts)
            except RuntimeError:  # another thread counted a new name meanwhile
                continue
            with open(path + ".tmp", "w") as out:
                json.dump(snapshot, out)
            os.replace(path + ".tmp", path)

    asyncio.events.Handle._run = _counted_run  # type: ignore[method-assign]
    selectors.EpollSelector.select = _counted_select  # type: ignore[method-assign]
    threading.Thread(target=_dump, name="loop-counts", daemon=True).start()
