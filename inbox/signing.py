"""The receipt webhook's signature: HMAC-SHA256 over a timestamp and the raw body.

A gateway sends `X-Notipipe-Timestamp: <unix seconds>` and
`X-Notipipe-Signature: v1=<hex of HMAC-SHA256(secret, "<timestamp>." + body)>`. Signing the
timestamp with the body binds the two, so a captured request cannot be replayed after
`max_age_s`; the service answers 401 to a stale or wrong signature. Each gateway has its own
secret; the service accepts any of several (a gateway's secret file may hold two lines while the
secret is rotated). docs/inbox.md, "Receipt webhook", is the contract.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

TIMESTAMP_HEADER = "X-Notipipe-Timestamp"
SIGNATURE_HEADER = "X-Notipipe-Signature"
VERSION = "v1"


class BadSignature(ValueError):
    """The request is not signed by the gateway it claims to come from, or is too old."""


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def sign(secret: bytes, body: bytes, now_s: int) -> dict[str, str]:
    """The headers a gateway adds to a receipt request."""
    return {TIMESTAMP_HEADER: str(now_s), SIGNATURE_HEADER: signature(secret, now_s, body)}


def verify(secrets: Sequence[bytes], headers: Mapping[str, str], body: bytes, now_s: int,
           max_age_s: int) -> None:
    """Raises BadSignature unless the headers sign `body` with one of `secrets` within `max_age_s`."""
    stamp, given = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not stamp or not given:
        raise BadSignature(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not stamp.isdigit():
        raise BadSignature(f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now_s - int(stamp)) > max_age_s:
        raise BadSignature(f"{TIMESTAMP_HEADER} is more than {max_age_s}s away from the server's "
                           "clock (a replay, or a clock to fix)")
    if not any(hmac.compare_digest(signature(secret, int(stamp), body), given.strip())
               for secret in secrets):
        raise BadSignature("the signature does not match the body and timestamp")
