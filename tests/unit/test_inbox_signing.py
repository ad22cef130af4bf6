"""The receipt webhook's signature (inbox/signing.py)."""

from __future__ import annotations

import pytest

from inbox.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignature, sign, signature, verify

SECRET = b"gateway-secret-0123456789abcdef01"
BODY = b'{"delivery_id":"d1","user_id":"u1","channel":"email","status":"DELIVERED"}'
NOW = 1_750_000_000


def test_a_signed_body_verifies_within_the_window() -> None:
    headers = sign(SECRET, BODY, NOW)
    assert headers[TIMESTAMP_HEADER] == str(NOW) and headers[SIGNATURE_HEADER].startswith("v1=")
    verify([SECRET], headers, BODY, NOW + 299, max_age_s=300)
    verify([SECRET], headers, BODY, NOW - 299, max_age_s=300)  # a gateway clock slightly ahead


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, NOW, BODY) == f"v1={expected}"


@pytest.mark.parametrize("change,problem", [
    (lambda h, b: (h, b + b" "), "does not match"),
    (lambda h, b: ({**h, TIMESTAMP_HEADER: str(NOW + 1)}, b), "does not match"),
    (lambda h, b: ({**h, TIMESTAMP_HEADER: str(NOW - 301)}, b), "away from"),
    (lambda h, b: ({**h, TIMESTAMP_HEADER: "soon"}, b), "unix seconds"),
    (lambda h, b: ({TIMESTAMP_HEADER: h[TIMESTAMP_HEADER]}, b), "missing"),
    (lambda h, b: ({SIGNATURE_HEADER: h[SIGNATURE_HEADER]}, b), "missing"),
])
def test_a_changed_stale_or_incomplete_request_is_refused(change, problem: str) -> None:
    headers, body = change(sign(SECRET, BODY, NOW), BODY)
    with pytest.raises(BadSignature, match=problem):
        verify([SECRET], headers, body, NOW, max_age_s=300)


def test_another_gateways_secret_is_refused_and_two_secrets_allow_a_rotation() -> None:
    other = b"other-secret-0123456789abcdef0123"
    with pytest.raises(BadSignature):
        verify([SECRET], sign(other, BODY, NOW), BODY, NOW, max_age_s=300)
    for secret in (SECRET, other):
        verify([other, SECRET], sign(secret, BODY, NOW), BODY, NOW, max_age_s=300)
