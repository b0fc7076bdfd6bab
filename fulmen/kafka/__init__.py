"""The one place Fulmen talks to Kafka through confluent-kafka."""

from fulmen.kafka._admin import BrokerUnreachable, create_fulmen_topics, ensure_topics
from fulmen.kafka._consumer import Consumed, EventConsumer, create_topics
from fulmen.kafka._settings import KafkaSettings, SaslMechanism, SecurityProtocol, TopicSettings

__all__ = [
    "BrokerUnreachable",
    "Consumed",
    "EventConsumer",
    "KafkaSettings",
    "SaslMechanism",
    "SecurityProtocol",
    "TopicSettings",
    "create_fulmen_topics",
    "create_topics",
    "ensure_topics",
]
