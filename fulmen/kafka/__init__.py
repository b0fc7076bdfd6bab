"""The one place Fulmen talks to Kafka through confluent-kafka."""

from fulmen.kafka._acls import AclGrantFailed, describe_acl, fulmen_acls, grant_acls
from fulmen.kafka._admin import (
    BrokerRefused,
    BrokerUnreachable,
    create_fulmen_topics,
    ensure_topics,
)
from fulmen.kafka._consumer import Consumed, EventConsumer, create_topics
from fulmen.kafka._settings import (
    CONTROL_GROUP_PREFIX,
    KafkaSettings,
    KafkaTlsError,
    SaslMechanism,
    SecurityProtocol,
    TopicSettings,
)

__all__ = [
    "CONTROL_GROUP_PREFIX",
    "AclGrantFailed",
    "BrokerRefused",
    "BrokerUnreachable",
    "Consumed",
    "EventConsumer",
    "KafkaSettings",
    "KafkaTlsError",
    "SaslMechanism",
    "SecurityProtocol",
    "TopicSettings",
    "create_fulmen_topics",
    "create_topics",
    "describe_acl",
    "ensure_topics",
    "fulmen_acls",
    "grant_acls",
]
