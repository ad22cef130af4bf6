"""The KRaft cluster id the stack formats the broker's storage with."""

from __future__ import annotations

import uuid

import pytest

from stack import components


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to '-' first: kafka-storage would take it for an option.
    dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    drawn = iter([dashed, dashed, plain])
    monkeypatch.setattr(components.uuid, "uuid4", lambda: next(drawn))
    cluster_id = components.new_cluster_id()
    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert next(drawn, None) is None  # both dashed ids were drawn and refused


def test_cluster_ids_are_22_url_safe_characters() -> None:
    ids = {components.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
