"""The local stack: real services (a Kafka broker) started on this machine for development,
tests and benchmarks."""
