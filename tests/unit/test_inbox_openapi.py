"""The OpenAPI document the service serves describes exactly its routes."""

from __future__ import annotations

import re

from inbox.app import create_app
from inbox.auth import Authenticator
from inbox.hub import FeedHub
from inbox.openapi import document
from inbox.services import Services
from inbox.settings import InboxSettings
from inbox.store import InboxStore


def _routes() -> set[tuple[str, str]]:
    services = Services(InboxSettings(), Authenticator([b"k" * 32]), {}, FeedHub(1, 1, lambda: 0.0),
                        InboxStore("host=127.0.0.1 dbname=none", 1))
    app = create_app(services, connect=False)
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in ("HEAD", "OPTIONS") or path.startswith("/static"):
            continue
        found.add((route.method.lower(), path))
    return found


def test_every_route_is_documented_and_every_documented_path_exists() -> None:
    documented = {(method, path) for path, item in document()["paths"].items() for method in item}
    assert documented == _routes()


def test_every_reference_resolves_and_every_path_parameter_is_declared() -> None:
    doc = document()
    text = repr(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert operation["responses"], (method, path)
