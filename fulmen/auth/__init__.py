"""API keys for Fulmen's HTTP services (the gateway, the policy server), OpenAI's way:
`Authorization: Bearer <key>`, several keys valid at once for rotation, from a setting or a
key file; 401 with OpenAI's error body without one. Without keys a service listens on
loopback only (and says it runs open)::

    keys = settings.load_api_keys()          # an ApiKeySettings subclass
    guard_listening(keys, host, service="gateway", env_prefix="FULMEN_GATEWAY_")
    app = RequireApiKey(app, keys=keys, open_paths={"/health"})
"""

from fulmen._net import is_loopback
from fulmen.auth._exposure import check_exposure, guard_listening
from fulmen.auth._keys import ApiKeys, AuthError, bearer_key
from fulmen.auth._middleware import RequireApiKey
from fulmen.auth._settings import ApiKeySettings

__all__ = [
    "ApiKeySettings",
    "ApiKeys",
    "AuthError",
    "RequireApiKey",
    "bearer_key",
    "check_exposure",
    "guard_listening",
    "is_loopback",
]
