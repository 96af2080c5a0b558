"""Tracking links: signed tokens that name an email and a URL, and nothing else."""

from __future__ import annotations

import html
import re

import pytest

from engine.email.feedback import STATUSES, advances
from engine.email.tracking import Tracker

TRACKER = Tracker(b"k" * 32, "https://ownly.example/")


def test_a_token_names_its_email_and_url() -> None:
    token = TRACKER.token("c", "eml_1", "https://example.com/a?b=1&c=2")
    assert TRACKER.read("c", token) == ("eml_1", "https://example.com/a?b=1&c=2")
    assert TRACKER.read("o", TRACKER.token("o", "eml_1")) == ("eml_1", None)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: "x" + t,  # the payload
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "",
        lambda t: "!!!." + t.split(".")[1],
    ],
)
def test_a_tampered_token_does_not_verify(tamper: object) -> None:
    token = TRACKER.token("c", "eml_1", "https://example.com/")
    assert TRACKER.read("c", tamper(token)) is None  # type: ignore[operator]


def test_a_token_for_one_link_is_not_another() -> None:
    opened = TRACKER.token("o", "eml_1")
    assert TRACKER.read("u", opened) is None
    assert TRACKER.read("c", opened) is None


def test_another_key_does_not_verify() -> None:
    other = Tracker(b"j" * 32, "https://ownly.example")
    assert other.read("o", TRACKER.token("o", "eml_1")) is None


def test_links_are_rewritten_and_a_pixel_added() -> None:
    body = (
        '<html><body><a href="https://example.com/x?a=1&amp;b=2">x</a>'
        "<a href='mailto:a@example.com'>m</a><a href=\"#top\">t</a></body></html>"
    )
    out = TRACKER.rewrite(body, "eml_1")
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', out)]
    assert hrefs[0].startswith("https://ownly.example/email/c/")
    token = hrefs[0].rsplit("/", 1)[1]
    assert TRACKER.read("c", token) == ("eml_1", "https://example.com/x?a=1&b=2")
    assert "mailto:a@example.com" in out and 'href="#top"' in out
    assert out.index("/email/o/") < out.index("</body>")


def test_statuses_only_move_forward() -> None:
    assert advances("queued", "sent")
    assert advances("sent", "delivered")
    assert advances("delivered", "opened")
    assert not advances("opened", "delivered")  # a late delivery report
    assert not advances("clicked", "opened")
    assert advances("clicked", "complained")
    assert not advances("bounced", "delivered")
    assert set(STATUSES) >= {"queued", "sent", "suppressed", "failed", "dropped"}
