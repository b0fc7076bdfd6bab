"""Incremental detokenization and stop strings (fulmen.serving._text), on a byte-level fake
tokenizer: each token id is a few bytes, decoding joins them and decodes UTF-8 with
replacement characters, as byte-level BPE does."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from fulmen.serving._text import TextStream

VOCAB: list[bytes] = [
    b"The",
    b" answer",
    b" is",
    b" 4",
    b"2",
    b".",
    b"\n",
    b"STOP",
    b"ST",
    b"OP",
    "€".encode()[:1],  # a character split over three tokens
    "€".encode()[1:2],
    "€".encode()[2:],
    "é".encode(),
    b" ",
    b"\xff",  # never valid UTF-8
]
EURO = [10, 11, 12]


def decode(ids: Sequence[int]) -> str:
    return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def run(ids: Sequence[int], stop: Sequence[str] = ()) -> tuple[list[str], TextStream]:
    stream = TextStream(decode, stop)
    deltas = []
    for token_id in ids:
        deltas.append(stream.push(token_id))
        if stream.stopped:
            return deltas, stream
    deltas.append(stream.flush())
    return deltas, stream


def test_deltas_join_to_the_decoding_of_all_tokens() -> None:
    ids = [0, 1, 2, 3, 4, 5, 6, 13]
    deltas, stream = run(ids)
    assert "".join(deltas) == decode(ids) == "The answer is 42.\né"
    assert deltas[:3] == ["The", " answer", " is"]
    assert not stream.stopped


def test_a_character_split_across_tokens_is_released_whole() -> None:
    deltas, _ = run([0, *EURO, 5])
    assert deltas == ["The", "", "", "€", ".", ""]


def test_an_incomplete_character_at_the_end_is_flushed_as_decoded() -> None:
    ids = [0, *EURO[:2]]
    deltas, _ = run(ids)
    assert "".join(deltas) == decode(ids) == "The\ufffd"


@pytest.mark.parametrize("seed", range(20))
def test_random_token_sequences_decode_consistently(seed: int) -> None:
    rng = random.Random(seed)
    ids = [rng.randrange(len(VOCAB)) for _ in range(rng.randrange(1, 40))]
    deltas, _ = run(ids)
    assert "".join(deltas) == decode(ids)


def test_a_stop_string_ends_the_text_before_it() -> None:
    deltas, stream = run([0, 1, 7, 2, 3], stop=["STOP"])
    assert stream.stopped
    assert "".join(deltas) == "The answer"
    assert len(deltas) == 3  # no token after the one that completed the stop string


def test_a_stop_string_split_over_tokens_is_held_back_then_dropped() -> None:
    deltas, stream = run([0, 8, 9, 1], stop=["STOP"])
    assert deltas == ["The", "", ""]
    assert stream.stopped


def test_a_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    deltas, stream = run([0, 8, 1], stop=["STOP"])
    assert deltas == ["The", "", "ST answer", ""]
    assert not stream.stopped


def test_a_held_back_prefix_is_released_at_the_end() -> None:
    deltas, stream = run([0, 8], stop=["STOP"])
    assert deltas == ["The", "", "ST"]
    assert not stream.stopped


def test_the_earliest_of_several_stop_strings_wins() -> None:
    deltas, _ = run([0, 1, 2, 3, 4, 5], stop=["42", " is"])
    assert "".join(deltas) == "The answer"


def test_a_stop_string_at_the_start_leaves_no_text() -> None:
    deltas, stream = run([7, 0], stop=["STOP"])
    assert "".join(deltas) == ""
    assert stream.stopped


@pytest.mark.parametrize("seed", range(20))
def test_random_sequences_with_a_stop_string(seed: int) -> None:
    rng = random.Random(seed)
    ids = [rng.randrange(len(VOCAB)) for _ in range(rng.randrange(1, 40))]
    stop = rng.choice([" is", "ST", "2.", "€"])
    deltas, stream = run(ids, stop=[stop])
    full = decode(ids)
    expected = full[: full.find(stop)] if stop in full else full
    assert "".join(deltas) == expected
    assert stream.stopped == (stop in full)


def test_empty_stop_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        TextStream(decode, [""])
