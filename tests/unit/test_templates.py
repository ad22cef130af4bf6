"""Rendering: event text wins, then the template catalog, then a readable fallback."""

from unit_helpers import event, go, only

from streams.core.model import Channel
from streams.core.routing.deliveries import render_event
from streams.core.templates import TEMPLATES, render


def test_known_template_renders_with_data():
    assert render("social.follow", {"actor": "Ada"}, "social.follow") == (
        "Ada started following you",
        "Say hello to Ada.",
    )


def test_unknown_template_falls_back_readably():
    title, body = render("no.such.template", {"amount": "5 EUR"}, "billing")
    assert title == "New billing notification"
    assert body == "amount: 5 EUR"


def test_missing_data_falls_back_instead_of_failing():
    title, body = render("social.like", {"actor": "Ada"}, "social.like")  # no 'object'
    assert title == "New social.like notification"
    assert body == "actor: Ada"


def test_fallback_without_data():
    assert render(None, {}, "news") == ("New news notification", "You have a new notification.")


def test_event_text_wins_and_gaps_come_from_the_template():
    ev = event(title="Custom", body=None, template="social.follow", data={"actor": "Ada"})
    assert render_event(ev) == ("Custom", "Say hello to Ada.")
    ev = event(title="T", body="B", template="social.follow", data={})
    assert render_event(ev) == ("T", "B")


def test_delivery_carries_the_rendered_template():
    ev = event(template="security.login", data={"device": "Firefox", "location": "Berlin"})
    [d] = go(ev, only(Channel.EMAIL)).deliveries
    assert d.title == "New sign-in to your account"
    assert "Firefox near Berlin" in d.body


def test_catalog_formats_only_use_named_fields():
    import string

    for name, formats in TEMPLATES.items():
        for fmt in formats:
            fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
            assert all(f.isidentifier() for f in fields), name
