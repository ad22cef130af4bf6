"""One credential: from its `NOTIPIPE_*` variable, else (local stack only) from a generated secret."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

from stack.secrets import secret
from stack.settings import ConfigError, StackSettings


class MissingCredential(ConfigError):
    """A server that is not the local stack's needs a credential no variable gives."""

    def __init__(self, variable: str, message: str) -> None:
        ValueError.__init__(self, message)
        self.variable, self.value, self.expected = variable, "", message


@dataclass(frozen=True)
class Credential:
    """Where one credential comes from: `variable`, else the local stack's secret `secret_name`."""

    variable: str
    secret_name: str
    purpose: str  # for the error message, e.g. "registering schemas in the registry"


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        """The value of an `Authorization` header."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def resolve(credential: Credential, settings: StackSettings, local: bool,
            environ: Mapping[str, str]) -> str:
    value = environ.get(credential.variable, "")
    if value:
        return value
    if local:
        return secret(settings, credential.secret_name)
    raise MissingCredential(credential.variable,
        f"{credential.variable} is not set: {credential.purpose} on a server this stack did not "
        f"start needs it (the local stack generates its own in {settings.cache_dir / 'secrets'})")


def username(variable: str, local_default: str, local: bool, purpose: str,
             environ: Mapping[str, str]) -> str:
    value = environ.get(variable, "")
    if value:
        return value
    if local:
        return local_default
    raise MissingCredential(variable, f"{variable} is not set: {purpose} on a server this stack did not "
                            "start needs it")
