"""The head that every prompt of a batch shares (system prompt, examples, tool schemas).

An agent's calls repeat a long head and differ in a short tail. Generation and the RL step
run the head once per batch and share its keys/values across rows: the same numbers, and
the same gradients (the head's activations feed every row, so their gradients add up),
for the cost of one row's head.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_SHARED_HEAD = 16
"""Shorter shared heads are recomputed per row: not worth the extra forward pass."""


def shared_head(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prefix all `prompts` share, leaving each at least one token of its own
    (the tail must predict the first response token); 0 when below `MIN_SHARED_HEAD`."""
    if not prompts:
        return 0
    first, shortest = prompts[0], min(len(ids) for ids in prompts)
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in prompts):
        length += 1
    return length if length >= MIN_SHARED_HEAD else 0
