"""Who may use the store server: its accounts checked against where it listens."""

from __future__ import annotations

from collections.abc import Mapping

from fulmen._net import is_loopback
from fulmen.errors import FulmenError
from fulmen.store._http_service import DEFAULT_USER, StoreUser


class StoreServerError(FulmenError):
    """The store server could not start or was used outside its contract."""


def accounts(
    users: Mapping[str, StoreUser], *, host: str, insecure_no_auth: bool
) -> tuple[dict[str, StoreUser], str | None]:
    """The server's accounts and its anonymous user, or :class:`StoreServerError`.

    Every account needs a password, unless `insecure_no_auth`: then requests without
    credentials run as the first writing user without a password (the user ``default`` when
    `users` is empty). `insecure_no_auth` is refused on a non-loopback `host`.
    """
    named = dict(users)
    if insecure_no_auth:
        if not is_loopback(host):
            raise StoreServerError(
                f"refusing to serve the store without authentication on {host!r}, which is "
                "not a loopback address: set a password (FULMEN_STORE__PASSWORD)"
            )
        named = named or {DEFAULT_USER: StoreUser(password="")}
        anonymous = next((n for n, u in named.items() if not u.readonly and not u.password), None)
        if anonymous is None:
            raise StoreServerError(
                "insecure_no_auth needs a writing user without a password: it admits "
                "requests without credentials as that user"
            )
        return named, anonymous
    if not named:
        raise StoreServerError("the store server needs at least one user with a password")
    if empty := sorted(name for name, user in named.items() if not user.password):
        raise StoreServerError(
            f"store user(s) {', '.join(empty)} have no password: set one (the writer's is "
            "FULMEN_STORE__PASSWORD, the readers' FULMEN_STORE__READERS), or start with "
            "--insecure-no-auth for local development on a loopback address"
        )
    return named, None
