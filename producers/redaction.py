"""Redacting the free text of events before they leave the process.

A redactor is any `Callable[[str], str]`: it gets one text field (a prompt, a completion, a
tool's arguments or result, an attribute's string value, a rollout's input …) and returns it
with what must not leave the process replaced. Name one in `FULMEN_PRODUCER__REDACT`
(`module:attribute`); `fulmen.producers.redaction:redact_pii` is the built-in one.

What was redacted is counted per kind from the typed placeholders a redactor writes,
`[UPPER_CASE]` (`[EMAIL]`, `[PHONE]` …): each placeholder the output holds beyond those the
input already held counts once under its name (lower-cased); a text changed without any new
placeholder counts once as `other`. See docs/producers.md#redaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import cast

from fulmen._import_path import import_attribute
from fulmen.errors import FulmenError

Redactor = Callable[[str], str]
"""Returns its argument with sensitive spans replaced (the same string when there are none)."""

_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z_]*)\]")

# A JSON-encoded text (chat messages, tool arguments) stays valid JSON after redaction: no
# pattern matches a quote or a backslash, and placeholders hold neither.
_API_KEY = re.compile(
    r"\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic (sk-ant-…), sk-proj-…
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/-]{8,}=*"  # HTTP bearer tokens
)
_SECRET_AFTER_WORD = re.compile(
    r"(?i)(\b(?:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|token|password|passwd|pwd)"
    r"[\s\"'\\]*[:=][\s\"'\\]*)"
    r"([^\s\"'\\,;{}\[\]<>]{4,})"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Digit groups not glued to other digits (a longer number is not a card or a phone).
_CARD = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,18}(?!\d)(?![ -]\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ :.-])"
    r"(?:\+\d{7,15}"
    r"|(?:\+\d{1,3}[ -]?)?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]\d{2,4}){1,4})"
    r"(?!\w)(?![ :.-]\d)"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = sum(char.isdigit() for char in text)
    # Without a country code or area-code parentheses, 10 digits at least: dates
    # (2026-12-03) and short numbers stay.
    shaped = text.startswith("+") or "(" in text
    return "[PHONE]" if (8 if shaped else 10) <= digits <= 15 else text


def redact_pii(text: str) -> str:
    """`text` with API keys and bearer tokens (`[API_KEY]`), values after words like key,
    token, secret or password (`[SECRET]`, the word kept), e-mail addresses (`[EMAIL]`),
    payment card numbers of 13 to 19 digits that pass the Luhn check (`[CARD]`) and phone
    numbers (`[PHONE]`: with a `+` country code or parentheses from 8 digits, else 10 to 15
    digits in groups separated by spaces or dashes) replaced. Heuristic: it masks the common
    shapes, not every way of writing them."""
    text = _API_KEY.sub("[API_KEY]", text)
    text = _SECRET_AFTER_WORD.sub(r"\1[SECRET]", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def redaction_kinds(before: str, after: str) -> Counter[str]:
    """What a redactor did to `before` to make `after`, by kind (see the module docstring)."""
    if before == after:
        return Counter()
    added = Counter(name.lower() for name in _PLACEHOLDER.findall(after))
    added.subtract(name.lower() for name in _PLACEHOLDER.findall(before))
    kinds = +added
    return kinds or Counter(other=1)


class RedactorLoadError(FulmenError):
    """A redaction setting that does not name a callable."""


def load_redactor(path: str) -> Redactor:
    """The redactor `path` (`module:attribute`) names.

    Raises:
        RedactorLoadError: `path` is malformed, does not import, or names no callable.
    """
    try:
        target = import_attribute(path)
    except ValueError as exc:
        raise RedactorLoadError(f"redact={path!r}: {exc}") from None
    except ImportError as exc:
        raise RedactorLoadError(f"redact={path!r} does not import: {exc}") from exc
    if not callable(target):
        raise RedactorLoadError(f"redact={path!r} is a {type(target).__name__}, not a callable")
    return cast(Redactor, target)  # a callable; its signature is the setting's contract
