"""Receipts as gateways send them, checked before they reach the topic (inbox/receipts.py)."""

from __future__ import annotations

import fastavro
import pytest

from inbox.receipts import MAX_PER_REQUEST, BadReceipt, parse_receipts
from streams.contracts.schemas import parsed_schema

NOW = 1_750_000_000_000
GOOD = {"delivery_id": "d1", "user_id": "u1", "channel": "email", "status": "bounced",
        "reason": "mailbox unknown", "reported_at": "2025-06-15T14:40:00Z"}


def test_a_receipt_becomes_a_delivery_status_record() -> None:
    [receipt] = parse_receipts(GOOD, "acme-mail", NOW)
    record = receipt.to_avro()
    assert record == {"delivery_id": "d1", "user_id": "u1", "channel": "EMAIL", "status": "BOUNCED",
                      "reason": "mailbox unknown", "provider": "acme-mail",
                      "reported_at": 1_749_998_400_000, "received_at": NOW}
    assert fastavro.validation.validate(record, parsed_schema("delivery_status"), raise_errors=True)


def test_a_list_is_several_receipts_and_reported_at_defaults_to_now() -> None:
    bare = {k: v for k, v in GOOD.items() if k not in ("reason", "reported_at")}
    receipts = parse_receipts([bare, {**bare, "delivery_id": "d2", "reported_at": 5}], "gw", NOW)
    assert [(r.delivery_id, r.reported_at, r.reason) for r in receipts] == [("d1", NOW, None),
                                                                           ("d2", 5, None)]


@pytest.mark.parametrize("body,problem", [
    ([], "empty list"),
    ("text", "JSON object"),
    ({**GOOD, "delivery_id": ""}, "delivery_id"),
    ({k: v for k, v in GOOD.items() if k != "user_id"}, "user_id"),
    ({**GOOD, "channel": "fax"}, "channel must be one of email, sms, push, in_app"),
    ({**GOOD, "status": "LOST"}, "status must be one of DELIVERED"),
    ({**GOOD, "reported_at": "yesterday"}, "reported_at"),
    ({**GOOD, "reported_at": "2025-06-15T14:40:00"}, "with a zone"),
    ({**GOOD, "reported_at": True}, "reported_at"),
    ({**GOOD, "reason": 42}, "reason"),
    ([GOOD, {**GOOD, "status": None}], r"receipt \[1\]: status"),
    ([GOOD] * (MAX_PER_REQUEST + 1), "at most"),
])
def test_what_is_not_a_receipt_is_refused_naming_the_field(body, problem: str) -> None:
    with pytest.raises(BadReceipt, match=problem):
        parse_receipts(body, "gw", NOW)
