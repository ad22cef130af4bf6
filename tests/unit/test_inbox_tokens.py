"""User tokens (inbox/tokens.py) and who may touch an inbox (inbox/auth.py)."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from inbox.auth import Authenticator
from inbox.tokens import LEEWAY_S, TokenError, issue, verify

SECRET = b"s" * 32
NOW = 1_750_000_000


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_names_its_user_until_it_expires() -> None:
    token = issue(SECRET, "alice", NOW, ttl_s=60)
    claims = verify(SECRET, token, NOW + 59)
    assert (claims.user_id, claims.issued_at, claims.expires_at) == ("alice", NOW, NOW + 60)
    # A few seconds of clock difference between issuer and service are tolerated, no more.
    verify(SECRET, token, NOW + 60 + LEEWAY_S - 1)
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, token, NOW + 60 + LEEWAY_S)


def test_it_is_a_standard_hs256_jwt() -> None:
    header, payload, _ = issue(SECRET, "alice", NOW, 60).split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(payload + "==="))["sub"] == "alice"


def test_another_secret_or_a_changed_payload_is_refused() -> None:
    token = issue(SECRET, "alice", NOW, 60)
    with pytest.raises(TokenError, match="bad signature"):
        verify(b"t" * 32, token, NOW)
    header, _, signature = token.split(".")
    forged = f"{header}.{_b64({'sub': 'bob', 'iat': NOW, 'exp': NOW + 60})}.{signature}"
    with pytest.raises(TokenError, match="bad signature"):
        verify(SECRET, forged, NOW)


def test_an_unsigned_token_is_refused_whatever_its_header_says() -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'alice', 'exp': NOW + 60})}."
    with pytest.raises(TokenError, match="bad signature"):
        verify(SECRET, unsigned, NOW)


@pytest.mark.parametrize("token,problem", [
    ("", "three"), ("a.b", "three"), ("a.b.c.d", "three"), ("!!.??.x", "bad signature"),
])
def test_malformed_tokens_are_refused(token: str, problem: str) -> None:
    with pytest.raises(TokenError, match=problem):
        verify(SECRET, token, NOW)


def test_a_signed_token_without_a_user_or_expiry_is_refused() -> None:
    import hashlib
    import hmac

    def signed(payload: dict) -> str:
        head = _b64({"alg": "HS256", "typ": "JWT"})
        body = _b64(payload)
        mac = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    with pytest.raises(TokenError, match="no user"):
        verify(SECRET, signed({"exp": NOW + 60}), NOW)
    with pytest.raises(TokenError, match="expiry"):
        verify(SECRET, signed({"sub": "alice"}), NOW)
    with pytest.raises(TokenError, match="future"):
        verify(SECRET, signed({"sub": "alice", "iat": NOW + 600, "exp": NOW + 900}), NOW)
    assert verify(SECRET, signed({"sub": "alice", "iat": NOW, "exp": NOW + 1}), NOW).user_id == "alice"


def test_a_short_secret_cannot_issue() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        issue(b"short", "alice", NOW, 60)


def _request(path: str, token: str | None, query_token: str | None = None) -> web.Request:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = path + (f"?access_token={query_token}" if query_token else "")
    request = make_mocked_request("GET", url, headers=headers,
                                  match_info={"user_id": path.split("/")[3]})
    return request


def test_only_the_owner_may_touch_an_inbox() -> None:
    auth = Authenticator([SECRET], clock=lambda: NOW)
    alice = issue(SECRET, "alice", NOW, 60)
    assert auth.owner(_request("/v1/users/alice/notifications", alice)) == "alice"
    with pytest.raises(web.HTTPForbidden):
        auth.owner(_request("/v1/users/bob/notifications", alice))
    for token in (None, "garbage", issue(b"x" * 32, "alice", NOW, 60), issue(SECRET, "alice", NOW - 120, 60)):
        with pytest.raises(web.HTTPUnauthorized) as refused:
            auth.owner(_request("/v1/users/alice/notifications", token))
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_feed_may_carry_its_token_in_the_query() -> None:
    auth = Authenticator([SECRET], clock=lambda: NOW)
    alice = issue(SECRET, "alice", NOW, 60)
    request = _request("/v1/users/alice/feed", None, query_token=alice)
    assert auth.owner(request, allow_query_token=True) == "alice"
    with pytest.raises(web.HTTPUnauthorized):
        auth.owner(request)  # elsewhere only the header counts


def test_while_a_secret_is_rotated_tokens_of_both_are_good_and_expiry_is_reported() -> None:
    new, old = b"n" * 32, b"o" * 32
    auth = Authenticator([new, old], clock=lambda: NOW)
    for secret in (new, old):
        assert auth.owner(_request("/v1/users/alice/x", issue(secret, "alice", NOW, 60))) == "alice"
    with pytest.raises(web.HTTPUnauthorized) as refused:
        auth.owner(_request("/v1/users/alice/x", issue(old, "alice", NOW - 600, 60)))
    assert "expired" in refused.value.text
