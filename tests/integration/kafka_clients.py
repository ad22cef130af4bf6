"""How the test harness's own Kafka clients log in: as the stack's admin, a super user, so that
observers and fixtures see everything whatever the ACLs under test allow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from stack.kafka_access import stack_access
from stack.settings import StackSettings


def admin_config(stack: StackSettings) -> dict[str, Any]:
    """confluent-kafka settings of the stack's admin (servers, TLS, SCRAM)."""
    return stack_access(stack, "admin").confluent_config()


@contextlib.contextmanager
def allowed(admin: AdminClient, role: str, operation: AclOperation, topic: str) -> Iterator[None]:
    """An ACL for a test's own topic (e.g. one Connect must read), removed afterwards."""
    grant = (ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{role}", "*", operation,
             AclPermissionType.ALLOW)
    admin.create_acls([AclBinding(*grant)])[AclBinding(*grant)].result(30)
    try:
        yield
    finally:
        admin.delete_acls([AclBindingFilter(*grant)])[AclBindingFilter(*grant)].result(30)
