"""Integration tests run on the real local stack, which the session fixture brings up."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic

from stack.settings import StackSettings
from tests.integration.kafka_clients import admin_config, allowed
from tests.integration.pipeline import pipeline_fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return StackSettings.from_env()


@pytest.fixture(scope="session", autouse=True)
def stack_up(settings: StackSettings) -> None:
    """`stack up` is idempotent: a no-op when the stack already runs (as in .ci/run)."""
    result = subprocess.run([sys.executable, "-m", "streams.cli", "stack", "up"],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"stack up failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def admin(settings: StackSettings) -> AdminClient:
    return AdminClient(admin_config(settings))


@pytest.fixture
def fresh_topic(admin: AdminClient) -> Iterator[str]:
    """A topic of this test's own that Kafka Connect may read, deleted afterwards."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    with allowed(admin, "connect", AclOperation.READ, name):
        yield name
    admin.delete_topics([name])[name].result(30)


@pytest.fixture
def pg(settings: StackSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        yield conn


# An isolated pipeline per module (own topic prefix, the module's ROUTER_ENV), a client, a
# watcher of what arrives and a worker process.
pipeline_env, client, watcher, worker = pipeline_fixtures("module")
