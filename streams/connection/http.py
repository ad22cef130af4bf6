"""Credentials of the HTTP servers: the schema registry (writes only) and Kafka Connect's REST API.

- NOTIPIPE_REGISTRY_USERNAME / NOTIPIPE_REGISTRY_PASSWORD: who registers schemas and sets
  compatibility rules (local stack: `notipipe-schemas` / `.cache/secrets/registry-password`).
  Reads need none: the worker, the SDK and Connect's Avro converter only look schemas up.
- NOTIPIPE_CONNECT_USERNAME / NOTIPIPE_CONNECT_PASSWORD: every call of Connect's REST API, by
  `stack up` and `notipipe connectors ...` (local: `notipipe-connect` / `.cache/secrets/connect-password`).

The local stack's servers always take the generated secrets; the variables are for servers it did
not start (NOTIPIPE_REGISTRY_URL, NOTIPIPE_CONNECT_URL pointing elsewhere), where they are required.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stack.settings import StackSettings
from streams.connection.credentials import BasicAuth, Credential, resolve, username

REGISTRY_USER = "notipipe-schemas"
REGISTRY_PASSWORD = Credential("NOTIPIPE_REGISTRY_PASSWORD", "registry-password",
                               "registering schemas in the schema registry")
CONNECT_USER = "notipipe-connect"
CONNECT_PASSWORD = Credential("NOTIPIPE_CONNECT_PASSWORD", "connect-password",
                              "calling Kafka Connect's REST API")


def local_registry_url(settings: StackSettings) -> str:
    return f"http://127.0.0.1:{settings.registry_port}/apis/ccompat/v7"


def local_connect_url(settings: StackSettings) -> str:
    return f"http://127.0.0.1:{settings.connect_port}"


def registry_is_local(settings: StackSettings) -> bool:
    return settings.registry_url == local_registry_url(settings)


def connect_is_local(settings: StackSettings) -> bool:
    return settings.connect_url == local_connect_url(settings)


def registry_writer(settings: StackSettings, environ: Mapping[str, str] = os.environ) -> BasicAuth:
    """Who registers schemas and sets compatibility rules (registry role sr-developer)."""
    local = registry_is_local(settings)
    return BasicAuth(
        username("NOTIPIPE_REGISTRY_USERNAME", REGISTRY_USER, local, REGISTRY_PASSWORD.purpose, environ),
        resolve(REGISTRY_PASSWORD, settings, local, environ))


def connect_client(settings: StackSettings, environ: Mapping[str, str] = os.environ) -> BasicAuth:
    """Who calls Kafka Connect's REST API."""
    local = connect_is_local(settings)
    return BasicAuth(
        username("NOTIPIPE_CONNECT_USERNAME", CONNECT_USER, local, CONNECT_PASSWORD.purpose, environ),
        resolve(CONNECT_PASSWORD, settings, local, environ))
