"""The built-in redactor, counting by kind, loading a redactor by path, and what the event
redactor does to each text field and to token ids."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fulmen.producers._event_redaction import EventRedactor
from fulmen.producers.redaction import (
    RedactorLoadError,
    load_redactor,
    redact_pii,
    redaction_kinds,
)
from fulmen.schemas import Attributes, Reward, RolloutEvent, Span, SpanStatus, ToolCall
from tests.support.events import TRACE, llm_span, meta

# A Visa test number (passes the Luhn check) and one with its last digit changed (fails it).
CARD = "4111 1111 1111 1111"
NOT_A_CARD = "4111111111111112"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+work@example.co.uk now", "mail me at [EMAIL] now"),
        (f"card {CARD}, thanks", "card [CARD], thanks"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("pay with 378282246310005", "pay with [CARD]"),  # Amex, 15 digits
        ("call +1 415 555 2671 today", "call [PHONE] today"),
        ("call +447911123456", "call [PHONE]"),
        ("call (415) 555-2671", "call [PHONE]"),
        ("call 415-555-2671", "call [PHONE]"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx1234", "key [API_KEY]"),
        ("gh ghp_" + "a" * 36, "gh [API_KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]"),
        ("slack xoxb-123456789012-abcdefghij", "slack [API_KEY]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: [API_KEY]"),
        ("password: hunter22", "password: [SECRET]"),
        ("api_key=9f86d081884c7d659a2feaa0c55ad015", "api_key=[SECRET]"),
        ("the secret = c2VjcmV0IHZhbHVlIGhlcmU=", "the secret = [SECRET]"),
    ],
)
def test_redact_pii_masks_each_kind(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"order {NOT_A_CARD} shipped",  # 16 digits, not Luhn-valid
        "4111 1111 1111 1112",  # grouped, not Luhn-valid, and too long for a phone
        "released on 2026-12-03 at 08:00",
        "version 1.2.3, build 20261203",
        "answer: 42, 3.14159, 1000000",
        "the token budget is large; max_tokens 512",
        "user@localhost is not an address",
        "sk-short",
    ],
)
def test_redact_pii_leaves_other_text(text: str) -> None:
    assert redact_pii(text) == text


def test_redact_pii_keeps_json_valid() -> None:
    messages = json.dumps(
        [
            {"role": "user", "content": "I am bob@example.com, card " + CARD},
            {"role": "tool", "content": json.dumps({"password": "hunter22", "q": "x"})},
        ]
    )
    redacted = json.loads(redact_pii(messages))
    assert redacted[0]["content"] == "I am [EMAIL], card [CARD]"
    assert json.loads(redacted[1]["content"]) == {"password": "[SECRET]", "q": "x"}


def test_kinds_count_new_placeholders() -> None:
    assert redaction_kinds("a", "a") == Counter()
    assert redaction_kinds("[EMAIL] x@y.io z@y.io", "[EMAIL] [EMAIL] [EMAIL]") == Counter(email=2)
    assert redaction_kinds("secret", "******") == Counter(other=1)


def test_load_redactor() -> None:
    assert load_redactor("fulmen.producers.redaction:redact_pii") is redact_pii
    with pytest.raises(RedactorLoadError, match="module:attribute"):
        load_redactor("redact_pii")
    with pytest.raises(RedactorLoadError, match="does not import"):
        load_redactor("fulmen.producers.redaction:nothing_here")
    with pytest.raises(RedactorLoadError, match="not a callable"):
        load_redactor("fulmen.schemas:USER_ID_LABEL")


def test_every_text_field_of_a_span_is_redacted() -> None:
    secret = "jane@example.com"
    span = llm_span().model_copy(
        update={
            "status": SpanStatus(code="ERROR", message=f"failed for {secret}"),
            "attributes": Attributes(strings={"user.email": secret}, ints={"n": 1}),
            "tool": ToolCall(name="lookup", arguments=f'{{"who": "{secret}"}}', result=secret),
        }
    )
    span = span.model_copy(
        update={"llm": span.llm.model_copy(update={"input_messages": f'["{secret}"]'})}  # type: ignore[union-attr]
    )
    redactor = EventRedactor(redact_pii)
    redacted = redactor.redact(span)
    assert isinstance(redacted, Span)
    assert secret not in redacted.model_dump_json()
    assert redacted.attributes.ints == {"n": 1}
    assert redacted.llm is not None
    # The prompt changed: its token ids would still spell the address, so they go.
    assert redacted.llm.prompt_token_ids == []
    assert redacted.llm.response_token_ids == []
    assert redacted.llm.response_logprobs == []
    assert redactor.counts() == {"email": 5, "token_ids": 1}


def test_token_ids_stay_when_nothing_was_redacted() -> None:
    span = llm_span()
    redactor = EventRedactor(redact_pii)
    assert redactor.redact(span) == span
    assert redactor.counts() == {}


def test_rollout_and_reward_texts_are_redacted_but_not_the_user_id() -> None:
    rollout = RolloutEvent(
        meta=meta(),
        phase="finished",
        trace_id=TRACE,
        input='{"q": "call +1 415 555 2671"}',
        status="failed",
        error="no account for 4111 1111 1111 1111",
        metadata={"user_id": "u-17@example.com", "note": "bob@example.com"},
    )
    redactor = EventRedactor(redact_pii)
    redacted = redactor.redact(rollout)
    assert isinstance(redacted, RolloutEvent)
    assert redacted.input == '{"q": "call [PHONE]"}'
    assert redacted.error == "no account for [CARD]"
    assert redacted.metadata == {"user_id": "u-17@example.com", "note": "[EMAIL]"}
    reward = Reward(meta=meta(), value=1.0, comment="judge: the user gave a@b.io")
    assert redactor.redact(reward) == reward.model_copy(
        update={"comment": "judge: the user gave [EMAIL]"}
    )
    assert redactor.counts() == {"phone": 1, "card": 1, "email": 2}


def test_a_redactor_that_raises_propagates() -> None:
    def broken(text: str) -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        EventRedactor(broken).redact(llm_span())


def test_the_docs_example_redactor_runs() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "producers.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", page, re.DOTALL) if "ACCOUNT" in b]
    exec(compile(block, "docs/producers.md", "exec"), {})
