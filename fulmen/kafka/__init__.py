"""The one place Fulmen talks to Kafka through confluent-kafka."""

from fulmen.kafka._settings import KafkaSettings, SaslMechanism, SecurityProtocol, TopicSettings

__all__ = ["KafkaSettings", "SaslMechanism", "SecurityProtocol", "TopicSettings"]
