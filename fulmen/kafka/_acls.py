"""The ACLs a Fulmen principal needs on a cluster that enforces them, and granting them."""

from __future__ import annotations

from enum import Enum
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # imported, not re-exported
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from fulmen.errors import FulmenError
from fulmen.kafka._settings import (
    CONTROL_GROUP_PREFIX,
    LIBRDKAFKA_LOGGER,
    KafkaSettings,
    TopicSettings,
)

_ALLOW = AclPermissionType.ALLOW
# Produce, consume, create the topics that are missing, read and raise a topic's record size.
_TOPIC_OPERATIONS = (
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
)


class AclGrantFailed(FulmenError):
    """The cluster refused to create an ACL (e.g. the granting user is no super user)."""


def fulmen_acls(principal: str, topics: TopicSettings, *, app_id: str) -> list[AclBinding]:
    """What `principal` (e.g. ``User:fulmen``) needs to run every Fulmen client, from any host,
    and nothing more:

    * topics starting with ``topics.prefix`` (the event, episode, control and dead-letter
      topics) and with `app_id` (the stream worker's changelog and Faust's leader topic):
      read, write, create, describe, describe and alter configs;
    * the consumer group `app_id` (the stream worker's) and the groups starting with
      ``fulmen-control-`` (each control topic reader's own): read.

    No transactional id and no cluster right: the worker's processing guarantee is
    at-least-once, and idempotent producers need only write rights on their topics.
    """
    bindings = [
        AclBinding(
            ResourceType.TOPIC, name, ResourcePatternType.PREFIXED, principal, "*", op, _ALLOW
        )
        for name in dict.fromkeys((topics.prefix, app_id))
        for op in _TOPIC_OPERATIONS
    ]
    groups = [
        (app_id, ResourcePatternType.LITERAL),
        (CONTROL_GROUP_PREFIX, ResourcePatternType.PREFIXED),
    ]
    bindings += [
        AclBinding(ResourceType.GROUP, name, pattern, principal, "*", AclOperation.READ, _ALLOW)
        for name, pattern in groups
    ]
    return bindings


def grant_acls(settings: KafkaSettings, bindings: list[AclBinding]) -> None:
    """Create `bindings` on the cluster of `settings` (whose user may alter the cluster's
    ACLs); an ACL that exists already is no error. `AclGrantFailed` says which was refused."""
    client: dict[str, Any] = {**settings.client_config(), "logger": LIBRDKAFKA_LOGGER}
    admin = AdminClient(client)
    for binding, future in admin.create_acls(bindings, request_timeout=30).items():
        try:
            future.result(timeout=60)
        except KafkaException as exc:
            raise AclGrantFailed(f"granting {binding}: {exc.args[0].str()}") from exc


def describe_acl(acl: AclBinding) -> str:
    """One line for a person: ``User:fulmen may READ on GROUP LITERAL fulmen-streams``."""
    parts = (acl.operation, acl.restype, acl.resource_pattern_type)
    operation, resource, pattern = (p.name if isinstance(p, Enum) else str(p) for p in parts)
    return f"{acl.principal} may {operation} on {resource} {pattern} {acl.name}"
