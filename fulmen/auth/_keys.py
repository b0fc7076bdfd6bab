"""The API keys a service accepts, and the check of a request's `Authorization` header
against them (OpenAI's convention: `Authorization: Bearer <key>`)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path

from fulmen.errors import FulmenError

_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: what a header carries


class AuthError(FulmenError):
    """API keys that cannot be used (a key file that cannot be read, a malformed key), or a
    service that would listen beyond loopback without one."""


class ApiKeys:
    """The keys a service accepts; several may be valid at once (rotation). Empty: the
    service is open (`required` is False).

    Only SHA-256 digests of the keys are kept for the check; a presented key is hashed and
    compared with every digest in constant time (`hmac.compare_digest`), so neither a key's
    length nor which key matched shows in the time an answer takes.

    Raises:
        AuthError: a key is empty or holds characters other than printable ASCII.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        listed = list(keys)
        for number, key in enumerate(listed, start=1):
            if not _KEY.fullmatch(key):
                raise AuthError(
                    f"API key #{number} is empty or has spaces or non-ASCII characters; "
                    "a key is printable ASCII without spaces"
                )
        self._digests = tuple(dict.fromkeys(_digest(key) for key in listed))
        self._own = listed[0] if listed else None

    @classmethod
    def load(cls, keys: Iterable[str] = (), *, file: Path | None = None) -> ApiKeys:
        """`keys` and, with `file`, the keys it holds: one a line, surrounding whitespace and
        blank lines ignored (a mounted Kubernetes Secret ends with a newline or not).

        Raises:
            AuthError: the file cannot be read, or holds no key, or a key is malformed.
        """
        listed = list(keys)
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise AuthError(f"cannot read the API key file {file}: {exc}") from exc
            from_file = [line.strip() for line in text.splitlines() if line.strip()]
            if not from_file:
                raise AuthError(f"the API key file {file} holds no key (one a line)")
            listed += from_file
        return cls(listed)

    @property
    def required(self) -> bool:
        """Whether requests must carry one of the keys (False: no key is configured)."""
        return bool(self._digests)

    @property
    def own(self) -> str | None:
        """The first key: what the service's own clients in the same process send (the
        policy server's version follower)."""
        return self._own

    def accepts(self, presented: str | None) -> bool:
        """Whether `presented` is one of the keys (True for anything when none is required)."""
        if not self._digests:
            return True
        if presented is None:
            return False
        digest = _digest(presented)
        matched = False
        for known in self._digests:  # every digest, whichever matches
            matched |= hmac.compare_digest(digest, known)
        return matched

    def accepts_header(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header value (`Bearer <key>`) carries one of the keys."""
        return self.accepts(bearer_key(authorization))


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header value (the scheme in any case),
    or None for a missing header or another scheme."""
    if authorization is None:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
