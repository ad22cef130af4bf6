"""The service's API as an OpenAPI 3.1 document, served at /openapi.json (a test keeps it and the
routes in step)."""

from __future__ import annotations

from typing import Any

from inbox.api import DEFAULT_LIMIT, MAX_LIMIT
from inbox.receipts import MAX_PER_REQUEST, STATUSES
from inbox.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "what is wrong")
_USER = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "the user whose inbox this is; must be the token's user"}
_DELIVERY = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH_ERRORS = {"401": _json(_ref("Error"), "no token, a bad one or an expired one"),
                "403": _json(_ref("Error"), "the token is another user's")}
_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Notification": {
        "type": "object",
        "properties": {
            "delivery_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["SINGLE", "DIGEST"]},
            "category": {"type": "string"},
            "priority": {"type": "string", "enum": ["LOW", "NORMAL", "HIGH", "CRITICAL"]},
            "title": {"type": "string"}, "body": {"type": "string"},
            "item_count": {"type": "integer"}, "digest_key": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "read": {"type": "boolean"}, "read_at": _TIME,
            "archived": {"type": "boolean"}, "archived_at": _TIME,
            "cursor": {"type": "string", "description": "this notification's position (opaque)"},
        },
    },
    "Page": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Notification")},
            "next_cursor": {"type": ["string", "null"],
                            "description": "pass as `cursor` for the next (older) page; null: last page"},
            "feed_after": {"type": "string", "description": "first page of the inbox shelf only: "
                           "pass as `after` to the feed, so nothing stored after this page is missed"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["delivery_id", "user_id", "channel", "status"],
        "properties": {
            "delivery_id": {"type": "string"}, "user_id": {"type": "string"},
            "channel": {"type": "string", "enum": ["email", "sms", "push", "in_app"]},
            "status": {"type": "string", "enum": list(STATUSES)},
            "reason": {"type": ["string", "null"], "description": "why BOUNCED or FAILED; no personal data"},
            "reported_at": {"oneOf": [{"type": "integer", "description": "epoch milliseconds"},
                                      {"type": "string", "format": "date-time"}],
                            "description": "when it happened at the provider (default: now)"},
        },
    },
}


def document() -> dict[str, Any]:
    users = "/v1/users/{user_id}"
    return {
        "openapi": "3.1.0",
        "info": {"title": "notipipe inbox service", "version": "1",
                 "description": "A user's in-app notifications, their live feed, and delivery "
                                "receipts from gateways. docs/inbox.md explains tokens, cursors "
                                "and the receipt signature."},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (HS256)"},
                "feedToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "gatewaySignature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                                     "description": f"v1=hex(HMAC-SHA256(secret, "
                                                    f"<{TIMESTAMP_HEADER}> + '.' + body))"},
            },
        },
        "security": [{"userToken": []}],
        "paths": {
            f"{users}/notifications": {"get": {
                "summary": "a page of the user's notifications, newest first",
                "parameters": [
                    _USER,
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "`next_cursor` of the previous page"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                "default": DEFAULT_LIMIT}},
                    {"name": "shelf", "in": "query",
                     "schema": {"type": "string", "enum": ["inbox", "archived", "all"], "default": "inbox"}},
                ],
                "responses": {"200": _json(_ref("Page"), "a page"), "400": _ERROR, **_AUTH_ERRORS},
            }},
            f"{users}/notifications/{{delivery_id}}": {
                "get": {"summary": "one notification", "parameters": [_USER, _DELIVERY],
                        "responses": {"200": _json(_ref("Notification"), "the notification"),
                                      "404": _ERROR, "409": _ERROR, **_AUTH_ERRORS}},
                "patch": {
                    "summary": "mark one notification read or unread, archived or not",
                    "parameters": [_USER, _DELIVERY],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"read": {"type": "boolean"},
                                                         "archived": {"type": "boolean"}}}}}},
                    "responses": {
                        "200": _json({"allOf": [_ref("Notification"), {"type": "object", "properties": {
                            "unread": {"type": "integer"}}}]}, "the notification, and the unread count"),
                        "400": _ERROR, "404": _ERROR,
                        "409": _json(_ref("Error"), "pushed by the feed but not stored yet: retry "
                                                    "after Retry-After seconds"),
                        **_AUTH_ERRORS},
                },
            },
            f"{users}/notifications/mark-all": {"post": {
                "summary": "mark every notification (not archived) read or unread",
                "parameters": [_USER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["read"],
                    "properties": {"read": {"type": "boolean"},
                                   "until": {"type": "string", "description": "only notifications up "
                                             "to this cursor (what the user has seen)"}}}}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "updated": {"type": "integer"}, "unread": {"type": "integer"}}}, "how many changed"),
                    "400": _ERROR, **_AUTH_ERRORS},
            }},
            f"{users}/unread-count": {"get": {
                "summary": "how many notifications are neither read nor archived",
                "parameters": [_USER],
                "responses": {"200": _json({"type": "object", "properties": {
                    "unread": {"type": "integer"}}}, "the count"), **_AUTH_ERRORS},
            }},
            f"{users}/feed": {"get": {
                "summary": "live feed (Server-Sent Events): what was missed since the cursor, then "
                           "each new notification",
                "security": [{"userToken": []}, {"feedToken": []}],
                "parameters": [
                    _USER,
                    {"name": "after", "in": "query", "schema": {"type": "string"},
                     "description": "a cursor (e.g. `feed_after`); the Last-Event-ID header wins"},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
                     "description": "sent by browsers on reconnect: the last event id received"},
                ],
                "responses": {"200": {"description": "events `notification` (data: a Notification, "
                                                     "id: its cursor), `ready`, `reload`",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              "400": _ERROR, **_AUTH_ERRORS},
            }},
            "/v1/receipts/{gateway}": {"post": {
                "summary": "a gateway reports what happened to deliveries",
                "security": [{"gatewaySignature": []}],
                "parameters": [
                    {"name": "gateway", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": TIMESTAMP_HEADER, "in": "header", "required": True,
                     "schema": {"type": "integer"}, "description": "unix seconds, signed with the body"},
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [_ref("Receipt"), {"type": "array", "items": _ref("Receipt"),
                                                "maxItems": MAX_PER_REQUEST}]}}}},
                "responses": {
                    "202": _json({"type": "object", "properties": {"accepted": {"type": "integer"}}},
                                 "on the receipts topic, acknowledged by the broker"),
                    "400": _ERROR,
                    "401": _json(_ref("Error"), "unknown gateway, bad or stale signature"),
                    "503": _json(_ref("Error"), "not acknowledged in time: retry"),
                },
            }},
            "/health": {"get": {"summary": "liveness and the feed's counters", "security": [],
                                "responses": {"200": {"description": "up"}}}},
            "/openapi.json": {"get": {"summary": "this document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/": {"get": {"summary": "the demo page (token in the URL fragment: #token=...)",
                          "security": [], "responses": {"200": {"description": "HTML"}}}},
        },
    }
