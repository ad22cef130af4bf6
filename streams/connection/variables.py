"""The credential variables every client reads, declared once: `notipipe settings` and
docs/configuration.md list them (a unit test fails when a `NOTIPIPE_*` name used under
streams/connection/ is missing here). On the local stack each defaults to the secret `stack up`
generated in `.cache/secrets/`; for servers the stack did not start, they are required."""

from __future__ import annotations

from streams.core.config import Var, choice, path, text

LOCAL = "the local stack's"
CREDENTIALS = (
    Var("NOTIPIPE_KAFKA_SECURITY_PROTOCOL", "How clients reach Kafka: SASL_SSL, SSL, SASL_PLAINTEXT "
        "or PLAINTEXT", choice("sasl_ssl", "ssl", "sasl_plaintext", "plaintext"), "`SASL_SSL`"),
    Var("NOTIPIPE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN",
        choice("scram-sha-512", "scram-sha-256", "plain"), "`SCRAM-SHA-512`"),
    Var("NOTIPIPE_KAFKA_USERNAME", "The Kafka principal a process logs in as (the local stack: one "
        "per role: producer, worker, connect, ops, monitoring, registry, inbox, admin)", text(), LOCAL),
    Var("NOTIPIPE_KAFKA_PASSWORD", "Its password...", text(), LOCAL),
    Var("NOTIPIPE_KAFKA_PASSWORD_FILE", "...or a file holding it (handed on to child processes)",
        path(), LOCAL),
    Var("NOTIPIPE_KAFKA_CA_FILE", "PEM file of the CA that signed the brokers' certificates "
        "(verified, host name included)", path(), LOCAL),
    Var("NOTIPIPE_REGISTRY_USERNAME", "Who registers schemas and sets compatibility rules (reads "
        "need no credentials)", text(), "`notipipe-schemas`"),
    Var("NOTIPIPE_REGISTRY_PASSWORD", "Its password", text(), LOCAL),
    Var("NOTIPIPE_CONNECT_USERNAME", "Kafka Connect's REST API user (`stack up`, `notipipe "
        "connectors`)", text(), "`notipipe-connect`"),
    Var("NOTIPIPE_CONNECT_PASSWORD", "Its password", text(), LOCAL),
    Var("NOTIPIPE_POSTGRES_PASSWORD", "PostgreSQL's owner role `notipipe` (migrations)", text(), LOCAL),
    Var("NOTIPIPE_POSTGRES_SINK_PASSWORD", "The role `notipipe_sink` (the JDBC sinks: no DDL)",
        text(), LOCAL),
    Var("NOTIPIPE_POSTGRES_READER_PASSWORD", "The role `notipipe_reader` (the inbox service: "
        "SELECT, and UPDATE of the marks it owns)", text(), LOCAL),
)
