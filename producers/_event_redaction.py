"""Applying a text redactor to every free-text field of an event, counting what it did."""

from __future__ import annotations

import threading
from collections import Counter

from fulmen.producers.redaction import Redactor, redaction_kinds
from fulmen.schemas import (
    USER_ID_LABEL,
    Attributes,
    Event,
    Feedback,
    LlmCall,
    Reward,
    RolloutEvent,
    Span,
)


class EventRedactor:
    """Runs `redactor` over the free text of spans (status message, attributes' string values,
    span events' attributes, an LLM call's input and output messages and tool definitions, a
    tool call's arguments and result), rewards (comment), feedback (correction, comment) and
    rollout events (input, error, metadata values but the `user_id` label, which forgetting a
    user needs). Ids, names,
    model names and versions are left alone; version and episode events carry no user text
    and pass unchanged.

    Token ids cannot be redacted as text: when any text of an LLM call changed, its prompt and
    response token ids and its logprobs are dropped (counted as `token_ids`), so the PII does
    not survive in them. Spans that held PII then train from their text only; the others keep
    their tokens.

    `counts` is read from any thread; `redact` is called by one (the emitter's sender). An
    exception from `redactor` propagates: the caller drops the event (fail closed).
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def counts(self) -> dict[str, int]:
        """Redactions since start, by kind (`email`, `phone`, … `token_ids`, `other`)."""
        with self._lock:
            return dict(self._counts)

    def redact(self, event: Event) -> Event:
        """A copy of `event` with its free text redacted."""
        found: Counter[str] = Counter()
        redacted = self._event(event, found)
        if found:
            with self._lock:
                self._counts.update(found)
        return redacted

    def _text(self, text: str, found: Counter[str]) -> str:
        after = self._redactor(text)
        if not isinstance(after, str):
            raise TypeError(f"the redactor returned {type(after).__name__}, not str")
        found.update(redaction_kinds(text, after))
        return after

    def _strings(self, values: dict[str, str], found: Counter[str]) -> dict[str, str]:
        return {key: self._text(value, found) for key, value in values.items()}

    def _attributes(self, attributes: Attributes, found: Counter[str]) -> Attributes:
        if not attributes.strings:
            return attributes
        return attributes.model_copy(update={"strings": self._strings(attributes.strings, found)})

    def _llm(self, llm: LlmCall, found: Counter[str]) -> LlmCall:
        texts = {
            "input_messages": self._text(llm.input_messages, found),
            "output_messages": self._text(llm.output_messages, found),
            "tool_definitions": self._text(llm.tool_definitions, found),
        }
        if all(texts[name] == getattr(llm, name) for name in texts):
            return llm
        if llm.prompt_token_ids or llm.response_token_ids:
            found["token_ids"] += 1
        return llm.model_copy(
            update={
                **texts,
                "prompt_token_ids": [],
                "response_token_ids": [],
                "response_logprobs": [],
            }
        )

    def _event(self, event: Event, found: Counter[str]) -> Event:
        if isinstance(event, Span):
            status = event.status
            if status.message:
                status = status.model_copy(update={"message": self._text(status.message, found)})
            tool = event.tool
            if tool is not None:
                tool = tool.model_copy(
                    update={
                        "arguments": self._text(tool.arguments, found),
                        "result": self._text(tool.result, found),
                    }
                )
            return event.model_copy(
                update={
                    "status": status,
                    "attributes": self._attributes(event.attributes, found),
                    "events": [
                        span_event.model_copy(
                            update={"attributes": self._attributes(span_event.attributes, found)}
                        )
                        for span_event in event.events
                    ],
                    "llm": None if event.llm is None else self._llm(event.llm, found),
                    "tool": tool,
                }
            )
        if isinstance(event, Reward):
            if event.comment is None:
                return event
            return event.model_copy(update={"comment": self._text(event.comment, found)})
        if isinstance(event, Feedback):
            return event.model_copy(
                update={
                    name: None if text is None else self._text(text, found)
                    for name, text in (("correction", event.correction), ("comment", event.comment))
                }
            )
        if isinstance(event, RolloutEvent):
            return event.model_copy(
                update={
                    "input": None if event.input is None else self._text(event.input, found),
                    "error": None if event.error is None else self._text(event.error, found),
                    "metadata": {
                        key: value if key == USER_ID_LABEL else self._text(value, found)
                        for key, value in event.metadata.items()
                    },
                }
            )
        return event
