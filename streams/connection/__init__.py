"""How every client reaches and authenticates to Kafka.

One settings path for every Kafka client of the project (the worker's Faust app and librdkafka
producers, the SDK and CLI, the benchmark, the stack's own provisioning, the tests):
`KafkaAccess.from_env(role)` reads the servers, the security protocol, the SASL credentials and the
CA certificate the broker's certificate is verified against, and turns them into the settings of
each kind of client (`confluent_config()`, `producer_config()`, `faust_app_kwargs()`,
`java_properties()`). The `role` names the principal a process acts as (`producer`, `worker`,
`ops`, ...): on the local stack it selects that principal's generated password, elsewhere the
`NOTIPIPE_KAFKA_*` variables give the credentials. See docs/security.md.
"""

from .kafka import KafkaAccess, KafkaAccessError, KafkaConfigError, kafka_access

__all__ = ["KafkaAccess", "KafkaAccessError", "KafkaConfigError", "kafka_access"]
