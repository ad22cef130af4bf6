"""Settings of `notipipe chaos` (the rest are its options)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from streams.core.config import env, load, whole


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    web_port: int = env("CHAOS_WEB_PORT", 6200, "First web port of the run's workers (each takes "
                        "the next free one)", whole(1024, 65000))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ChaosSettings:
        return load(cls, environ)
