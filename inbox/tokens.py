"""User tokens: JWTs signed with HMAC-SHA256 (HS256), made and checked with the standard library.

An app's backend issues one per signed-in user (`issue`, or `notipipe inbox token --user ...`);
the browser sends it as `Authorization: Bearer <token>`. Only `HS256` is accepted, whatever the
header says (no `none`, no algorithm confusion); `sub` is the user id, `exp` is required.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

ALGORITHM = "HS256"
ISSUER = "notipipe-inbox"
MIN_SECRET_BYTES = 32
# Tolerated clock difference between the issuer and the service.
LEEWAY_S = 5


class TokenError(ValueError):
    """The token is not one this service issued, or it expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_CHARS for c in text):
        raise TokenError("malformed token: not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEADER = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())


def _signature(secret: bytes, signing_input: str) -> str:
    return _b64(hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest())


def check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret has {len(secret)} bytes; HS256 needs at least "
                         f"{MIN_SECRET_BYTES} random bytes")
    return secret


def issue(secret: bytes, user_id: str, now_s: int, ttl_s: int) -> str:
    """A token for `user_id`, valid for `ttl_s` seconds from `now_s`."""
    if not user_id:
        raise ValueError("a token needs a user id")
    if ttl_s <= 0:
        raise ValueError("a token's lifetime must be positive")
    payload = {"sub": user_id, "iat": now_s, "exp": now_s + ttl_s, "iss": ISSUER}
    signing_input = f"{_HEADER}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_signature(check_secret(secret), signing_input)}"


def verify(secret: bytes, token: str, now_s: int) -> Claims:
    """The token's claims if its signature is ours and it has not expired; TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token: expected three dot-separated parts")
    header_b64, payload_b64, signature = parts
    # The signature first: nothing of an unsigned token is trusted, not even its header.
    if not hmac.compare_digest(_signature(secret, f"{header_b64}.{payload_b64}"), signature):
        raise TokenError("bad signature")
    header = _json_object(header_b64, "header")
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"unsupported algorithm {header.get('alg')!r}: only {ALGORITHM}")
    payload = _json_object(payload_b64, "payload")
    user_id, issued_at, expires_at = payload.get("sub"), payload.get("iat", 0), payload.get("exp")
    if not isinstance(user_id, str) or not user_id:
        raise TokenError("the token names no user (sub)")
    if not isinstance(expires_at, int) or not isinstance(issued_at, int):
        raise TokenError("the token has no expiry (exp) or a bad one")
    if now_s >= expires_at + LEEWAY_S:
        raise TokenError("the token expired")
    if issued_at > now_s + LEEWAY_S:
        raise TokenError("the token was issued in the future")
    return Claims(user_id, issued_at, expires_at)


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(part))
    except (ValueError, UnicodeDecodeError):
        raise TokenError(f"malformed token {what}") from None
    if not isinstance(value, dict):
        raise TokenError(f"malformed token {what}")
    return value
