"""What the handlers share in one instance: set up when the service starts, closed when it stops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from aiohttp import web
from confluent_kafka import KafkaException
from confluent_kafka.schema_registry.error import SchemaRegistryError
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolTimeout

from inbox import connections
from inbox.auth import Authenticator
from inbox.feed import DeliveryFeed, FeedError
from inbox.hub import FeedHub
from inbox.receipts import ReceiptProducer
from inbox.secret_files import TOKEN_SECRET, gateway_secret_name, read_secrets
from inbox.settings import InboxSettings
from inbox.store import InboxStore
from streams.contracts.pipeline_codec import pipeline_codec

log = logging.getLogger("notipipe.inbox")


class StartupError(RuntimeError):
    """A connection the service needs cannot be made; the message says which and what to check."""


@dataclass
class Services:
    settings: InboxSettings
    auth: Authenticator
    gateway_secrets: Mapping[str, Sequence[bytes]]
    hub: FeedHub
    store: InboxStore
    feed: DeliveryFeed | None = None
    receipts: ReceiptProducer | None = None
    started_at: float = field(default_factory=time.time)


SERVICES = web.AppKey("services", Services)


def load_secrets(settings: InboxSettings) -> tuple[list[bytes], dict[str, list[bytes]]]:
    """The token secrets and each gateway's receipt secrets (SecretMissing names a missing file)."""
    directory = settings.secrets_directory()
    gateways = {name: read_secrets(directory, gateway_secret_name(name))
                for name in sorted(settings.gateways)}
    return read_secrets(directory, TOKEN_SECRET), gateways


def build(settings: InboxSettings) -> Services:
    token_secrets, gateway_secrets = load_secrets(settings)
    return Services(
        settings=settings,
        auth=Authenticator(token_secrets),
        gateway_secrets=gateway_secrets,
        hub=FeedHub(settings.resume_window_s, settings.resume_max, time.monotonic),
        store=InboxStore(connections.postgres_dsn(settings), settings.pool_size),
    )


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: connect everything before serving, close it all at the end."""
    services = app[SERVICES]
    settings = services.settings
    loop = asyncio.get_running_loop()
    codec = pipeline_codec(connections.registry_client(settings), settings.topics)
    try:
        await services.store.open()
    except PoolTimeout:
        raise StartupError(f"cannot connect to PostgreSQL ({_where(connections.postgres_dsn(settings))}): "
                           "check NOTIPIPE_INBOX_POSTGRES_DSN and that the server runs") from None
    services.feed = DeliveryFeed(connections.feed_consumer_config(settings),
                                 settings.topics.deliveries("in_app"), codec, services.hub.publish, loop)
    services.receipts = ReceiptProducer(connections.receipts_producer_config(settings),
                                        settings.topics.receipts, codec)
    # Blocking client calls (metadata, offsets, a registry lookup): off the event loop.
    try:
        await loop.run_in_executor(None, services.feed.start)
    except (FeedError, KafkaException) as exc:
        raise StartupError(f"the live feed cannot start on {settings.bootstrap_servers}: {exc}") from None
    try:
        await loop.run_in_executor(None, services.receipts.start)
    except (SchemaRegistryError, OSError) as exc:
        raise StartupError(f"the receipts' schema is not in the registry at {settings.registry_url} "
                           f"({exc}): register the contracts first (`notipipe stack up` or `stack "
                           "init`)") from None
    log.info("inbox service ready: feed on %s (%d partitions), receipts to %s",
             services.feed.topic, services.feed.partitions, services.receipts.topic)
    yield
    services.hub.close_all()
    await loop.run_in_executor(None, services.feed.stop)
    await loop.run_in_executor(None, services.receipts.stop)
    await services.store.close()


def _where(dsn: str) -> str:
    """host, port, database and user of a DSN, never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "a malformed DSN"
    return ", ".join(f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user") if parts.get(k))
