"""Tool calls written as text: the JSON objects `{"tool": "…", …}` a model replies with when
its server does not parse tool calls (SmolLM2 on `fulmen serve`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def tool_calls(completion: str) -> Iterator[dict[str, object]]:
    """The JSON objects with a `tool` key in `completion`, in order; text that is not JSON
    is skipped."""
    for match in _JSON_OBJECT.finditer(completion):
        try:
            call = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(call, dict) and "tool" in call:
            yield call
