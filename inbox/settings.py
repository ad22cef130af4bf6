"""The inbox service's settings (`NOTIPIPE_INBOX_*`, plus where the pipeline is)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.connection.endpoints import Endpoints
from streams.core.config import env, load, names, number, path, text, whole


@dataclass(frozen=True, slots=True)
class InboxSettings(Endpoints):
    host: str = env("INBOX_HOST", "127.0.0.1", "Address the inbox service listens on", text())
    port: int = env("INBOX_PORT", 8070, "Inbox service HTTP port (API, live feed, receipt webhook, "
                    "demo page)", whole(1024, 65535))
    postgres_dsn: str = env("INBOX_POSTGRES_DSN", "", "libpq DSN of a role with SELECT on `inbox` "
                            "and UPDATE of its `read_at`, `archived_at` (unset: the local stack's "
                            "database)", text())
    pool_size: int = env("INBOX_POSTGRES_POOL", 4, "Most PostgreSQL connections of one instance",
                         whole(1, 100))
    secrets_dir: Path | None = env("INBOX_SECRETS_DIR", None, "Directory of the secret files "
                                   "`inbox-token` and `receipts-<gateway>` (unset: the local "
                                   "stack's `.cache/secrets`)", path())
    gateways: frozenset[str] = env("INBOX_GATEWAYS", frozenset({"stub"}), "Gateways allowed to "
                                   "post receipts, each with its secret file", names())
    token_ttl_s: int = env("INBOX_TOKEN_TTL_S", 3600, "Lifetime of a user token from `notipipe "
                           "inbox token`", whole(60, 30 * 86400))
    receipt_max_age_s: int = env("INBOX_RECEIPT_MAX_AGE_S", 300, "A signed receipt request older "
                                 "(or newer) than this is refused as a replay", whole(10, 3600))
    receipt_ack_timeout_s: float = env("INBOX_RECEIPT_ACK_TIMEOUT_S", 10.0, "How long a receipt "
                                       "waits for the broker before the webhook answers 503",
                                       number(0.5, 120, "seconds"))
    resume_window_s: float = env("INBOX_RESUME_WINDOW_S", 300.0, "Live deliveries kept in memory "
                                 "for reconnecting clients, covering the inbox sink's lag",
                                 number(1, 86400, "seconds"))
    resume_max: int = env("INBOX_RESUME_MAX", 100_000, "...and at most this many of them "
                          "(about 1 KB each)", whole(100, 10_000_000))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> InboxSettings:
        return load(cls, environ)

    def database_dsn(self) -> str:
        if self.postgres_dsn:
            return self.postgres_dsn
        from stack.settings import StackSettings

        return StackSettings.from_env().postgres_dsn

    def secrets_directory(self) -> Path:
        if self.secrets_dir is not None:
            return self.secrets_dir
        from stack.settings import StackSettings

        return StackSettings.from_env().cache_dir / "secrets"
