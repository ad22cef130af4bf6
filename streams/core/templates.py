"""Built-in notification templates: name -> (title format, body format), filled from event data.

Formats use ``str.format`` fields naming keys of the event's ``data`` map. A template that is
unknown, or whose data lacks a field, is not an error: ``render`` falls back to a readable
generic text, because a slightly generic notification beats a lost one.
"""

from __future__ import annotations

from collections.abc import Mapping

TEMPLATES: dict[str, tuple[str, str]] = {
    "social.like": ("{actor} liked your {object}", "{actor} liked your {object}."),
    "social.follow": ("{actor} started following you", "Say hello to {actor}."),
    "social.comment": ("{actor} commented on your {object}", "{actor}: {comment}"),
    "social.mention": ("{actor} mentioned you", "{actor} mentioned you in {object}."),
    "message.new": ("New message from {sender}", "{preview}"),
    "order.shipped": ("Your order {order_id} has shipped", "Expected delivery: {eta}."),
    "billing.invoice": (
        "Your invoice {invoice_id} is ready",
        "Amount due: {amount} by {due_date}.",
    ),
    "billing.payment_failed": (
        "Payment failed",
        "We could not charge your {method}. Please update it before {due_date}.",
    ),
    "security.login": (
        "New sign-in to your account",
        "New sign-in from {device} near {location}. Not you? Secure your account now.",
    ),
    "security.password_reset": (
        "Reset your password",
        "Use this link to reset your password: {link}",
    ),
}


def render(template: str | None, data: Mapping[str, str], category: str) -> tuple[str, str]:
    """Title and body for an event without pre-rendered text."""
    formats = TEMPLATES.get(template) if template else None
    if formats is not None:
        try:
            return formats[0].format_map(data), formats[1].format_map(data)
        except (KeyError, IndexError, ValueError, AttributeError):
            pass  # incomplete data for this template: generic text below
    return fallback(data, category)


def fallback(data: Mapping[str, str], category: str) -> tuple[str, str]:
    title = data.get("title") or f"New {category} notification"
    body = data.get("body") or data.get("message")
    if not body:
        body = "; ".join(f"{k}: {v}" for k, v in sorted(data.items()) if k != "title")
    return title, body or "You have a new notification."
