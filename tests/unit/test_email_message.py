"""The outgoing email: what addresses and headers are refused, and the MIME it becomes.

Every message is read back with the standard library's own parser
(``email.policy.default``), never with the code that wrote it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from typing import Any

import pytest

from connectors.email import (
    EMAIL_ID_HEADER,
    InvalidEmail,
    OutgoingEmail,
    check_header,
    make_message_id,
    parse_address,
)
from connectors.email import message as message_module
from connectors.errors import ConnectorError

UNSUBSCRIBE = (
    "<https://ownly.com/u/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEyMyIsImVtYWlsIjoiZW1sXzAx"
    "In0.c2lnbmF0dXJlLWhlcmUtaXMtbG9uZw>, <mailto:unsubscribe@ownly.com?subject=eml_01JD>"
)
DATE = datetime(2026, 11, 26, 12, 30, tzinfo=timezone(timedelta(hours=1)))


def make_email(**changes: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "email_id": "eml_01JD3Z6K8Q",
        "message_id": "<eml_01JD3Z6K8Q@mail.ownly.com>",
        "sender": "OWNLY <hello@ownly.com>",
        "to": "Jane Investor <jane@investor.example>",
        "subject": "Your investment receipt",
        "html": "<p>Thank you, Jane.</p>",
        "text": "Thank you, Jane.\n",
        "date": DATE,
        "reply_to": "Support <support@ownly.com>",
        "headers": (
            ("List-Unsubscribe", UNSUBSCRIBE),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
        "category": "receipts",
    }
    fields.update(changes)
    return OutgoingEmail(**fields)


def parsed(outgoing: OutgoingEmail) -> EmailMessage:
    message = email.message_from_bytes(outgoing.as_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def content(part: EmailMessage) -> str:
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("text", "name", "addr_spec"),
    [
        ("hello@ownly.com", "", "hello@ownly.com"),
        ("OWNLY <hello@ownly.com>", "OWNLY", "hello@ownly.com"),
        ("<hello@ownly.com>", "", "hello@ownly.com"),
        ("  OWNLY Team   <Hello@OWNLY.com>  ", "OWNLY Team", "Hello@ownly.com"),
        ('"Doe, Jane" <jane@ownly.com>', "Doe, Jane", "jane@ownly.com"),
        ('"Say \\"hi\\"" <hi@ownly.com>', 'Say "hi"', "hi@ownly.com"),
        ("J. Doe <j.doe@ownly.com>", "J. Doe", "j.doe@ownly.com"),
        ("Zoë Ünïcødé <zoe@ownly.com>", "Zoë Ünïcødé", "zoe@ownly.com"),
        ("山田太郎 <taro@ownly.com>", "山田太郎", "taro@ownly.com"),
        ("jane+receipts@ownly.com", "", "jane+receipts@ownly.com"),
        ("jane@bücher.example", "", "jane@xn--bcher-kva.example"),
    ],
)
def test_addresses_accepted(text: str, name: str, addr_spec: str) -> None:
    address = parse_address(text, "to")
    assert (address.display_name, address.addr_spec) == (name, addr_spec)
    again = parse_address(str(address), "to")
    assert (again.display_name, again.addr_spec) == (name, addr_spec)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("hello@ownly.com\r\nBcc: victim@ownly.com", "'\\r'"),
        ("hello@ownly.com\nBcc: victim@ownly.com", "'\\n'"),
        ("OWNLY\r\nBcc: victim@ownly.com <hello@ownly.com>", "'\\r'"),
        ("OWNLY\n <hello@ownly.com>", "'\\n'"),
        ("hello@ownly.com\0", "'\\x00'"),
        ("a@ownly.com, b@ownly.com", "more than one address"),
        ("a@ownly.com; b@ownly.com", "more than one address"),
        ("A <a@ownly.com>, B <b@ownly.com>", "more than one address"),
        ("A <a@ownly.com>,b@ownly.com", "more than one address"),
        ("<a@ownly.com> <b@ownly.com>", "more than one address"),
        ("hello.ownly.com", "no @"),
        ("OWNLY <hello.ownly.com>", "no @"),
        ("", "no address"),
        ("OWNLY <>", "no address"),
        ("a@b@ownly.com", "not a valid address"),
        ("hello@", "not a valid address"),
        ("@ownly.com", "not a valid address"),
        ("hello@ownly", "not a valid address"),
        ("hello@-ownly.com", "not a valid address"),
        ("zoë@ownly.com", "not a valid address"),
        ("x" * 250 + "@ownly.com", "at most 254"),
        ("OWNLY (team) <hello@ownly.com>", "double quotes"),
        ('"OWNLY <hello@ownly.com>', "closing"),
        ('"OWNLY" x <hello@ownly.com>', "followed by more text"),
        ("hello@ownly.com>", "no '<'"),
        ("jane doe@ownly.com", "space"),
        ("N" * 300 + " <hello@ownly.com>", "at most 256"),
    ],
)
def test_addresses_refused(text: str, problem: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        parse_address(text, "reply_to")
    assert caught.value.field == "reply_to"
    assert problem in str(caught.value)
    assert str(caught.value).startswith("reply_to: ")
    assert isinstance(caught.value, ConnectorError)


@pytest.mark.parametrize(
    "value",
    [
        "Hi\r\nBcc: evil@x.com",
        "Hi\nBcc: evil@x.com",
        "Hi\rX",
        "a\0b",
        *(f"a{char}b" for char in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"),
    ],
)
def test_check_header_refuses_line_breaks_and_nul(value: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        check_header(value, "subject")
    assert caught.value.field == "subject"


@pytest.mark.parametrize("char", "\v\f\x1c\x1d\x1e\x85\u2028\u2029")
def test_a_subject_check_header_passes_can_be_written(char: str) -> None:
    with pytest.raises(InvalidEmail):
        make_email(subject=f"a{char}b")


def test_check_header_limits_a_line_to_998_characters() -> None:
    assert check_header("s" * 998, "subject") == "s" * 998
    with pytest.raises(InvalidEmail, match="at most 998"):
        check_header("s" * 999, "subject")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sender": "hello@ownly.com\r\nBcc: victim@ownly.com"}, "from"),
        ({"sender": "a@ownly.com, b@ownly.com"}, "from"),
        ({"to": "jane@investor.example\nBcc: victim@ownly.com"}, "to"),
        ({"to": "jane"}, "to"),
        ({"reply_to": "support@ownly.com, evil@x.com"}, "reply_to"),
        ({"subject": "Receipt\r\nBcc: victim@ownly.com"}, "subject"),
        ({"subject": "Receipt\nX-Injected: yes"}, "subject"),
        ({"subject": "s" * 999}, "subject"),
        ({"html": None, "text": None}, "body"),
        ({"html": None, "text": ""}, "body"),
        ({"text": "nul\0here"}, "body"),
        ({"date": datetime(2026, 11, 26, 12, 30)}, "date"),
        ({"email_id": "../../etc/passwd"}, "email_id"),
        ({"email_id": ""}, "email_id"),
        ({"email_id": "eml 1"}, "email_id"),
        ({"message_id": "eml_01@mail.ownly.com"}, "message_id"),
        ({"message_id": "<eml_01>"}, "message_id"),
        ({"message_id": "<eml_01@mail.ownly.com>\r\nBcc: victim@ownly.com"}, "message_id"),
        ({"headers": (("Bcc", "victim@ownly.com"),)}, "headers"),
        ({"headers": (("from", "evil@x.com"),)}, "headers"),
        ({"headers": (("Content-Type", "text/plain"),)}, "headers"),
        ({"headers": ((EMAIL_ID_HEADER, "eml_other"),)}, "headers"),
        ({"headers": (("X-Note", "ok\r\nBcc: victim@ownly.com"),)}, "headers"),
        ({"headers": (("X Note", "ok"),)}, "headers"),
        ({"headers": (("X-Note:", "ok"),)}, "headers"),
        ({"headers": (("X-Note", "a"), ("x-note", "b"))}, "headers"),
        ({"headers": (("X-Note", "n" * 991),)}, "headers"),
        ({"category": "c" * 129}, "category"),
        ({"category": "receipts\nBcc: x"}, "category"),
        ({"category": ""}, "category"),
    ],
)
def test_an_invalid_email_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        make_email(**changes)
    assert caught.value.field == field


def test_addresses_are_kept_normalized() -> None:
    outgoing = make_email(sender='"Doe, Jane"   <Jane@OWNLY.COM>', to="JANE@Investor.Example")
    assert outgoing.sender == '"Doe, Jane" <Jane@ownly.com>'
    assert outgoing.to == "JANE@investor.example"
    assert outgoing.sender_address.display_name == "Doe, Jane"
    assert outgoing.reply_to_address is not None
    assert make_email(reply_to=None).reply_to_address is None


def test_make_message_id() -> None:
    assert make_message_id("eml_01JD3Z6K8Q", "mail.ownly.com") == "<eml_01JD3Z6K8Q@mail.ownly.com>"
    with pytest.raises(InvalidEmail) as caught:
        make_message_id("eml_01", "mail.ownly.com>\r\nBcc: x@y.com")
    assert caught.value.field == "message_id"
    with pytest.raises(InvalidEmail) as caught:
        make_message_id("eml/01", "mail.ownly.com")
    assert caught.value.field == "email_id"


def test_text_and_html_become_multipart_alternative_text_first() -> None:
    message = parsed(make_email())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(isinstance(p, EmailMessage) for p in parts)
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert content(parts[0]) == "Thank you, Jane.\n"  # type: ignore[arg-type]
    assert content(parts[1]).rstrip("\n") == "<p>Thank you, Jane.</p>"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "content_type", "body"),
    [
        ({"html": None}, "text/plain", "Thank you, Jane.\n"),
        ({"text": None}, "text/html", "<p>Thank you, Jane.</p>\n"),
    ],
)
def test_one_body_is_a_single_part(changes: dict[str, Any], content_type: str, body: str) -> None:
    message = parsed(make_email(**changes))
    assert not message.is_multipart()
    assert message.get_content_type() == content_type
    assert message.get_content_charset() == "utf-8"
    assert content(message) == body


def test_headers_are_present_and_exact() -> None:
    outgoing = make_email()
    message = parsed(outgoing)
    assert message["From"] == "OWNLY <hello@ownly.com>"
    assert message["To"] == "Jane Investor <jane@investor.example>"
    assert message["Reply-To"] == "Support <support@ownly.com>"
    assert message["Subject"] == "Your investment receipt"
    assert message["Message-ID"] == "<eml_01JD3Z6K8Q@mail.ownly.com>"
    assert message["MIME-Version"] == "1.0"
    assert message[EMAIL_ID_HEADER] == "eml_01JD3Z6K8Q"
    assert message["List-Unsubscribe"] == UNSUBSCRIBE
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Literally on the wire, not as encoded words: one-click unsubscribe reads the raw URL.
    for url in UNSUBSCRIBE.split(", "):
        assert url.encode() in outgoing.as_bytes()
    assert email.utils.parsedate_to_datetime(message["Date"]) == DATE
    assert message["Date"] == "Thu, 26 Nov 2026 12:30:00 +0100"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert len(message.get_all(name) or []) == 1, name


def test_no_reply_to_when_none_is_given() -> None:
    assert "Reply-To" not in parsed(make_email(reply_to=None))


def test_the_wire_form_is_ascii_with_crlf_and_short_lines() -> None:
    outgoing = make_email(
        sender="Zoë Ünïcødé <zoe@ownly.com>",
        subject="Reçu — 25 000,00 € pour l'investissement n° 12345 dans le fonds « Soleil »",
        text="Bonjour Zoë,\n" + "€" * 500 + "\n" + "a" * 2000 + "\n",
        html="<p>Bonjour Zoë</p>",
    )
    wire = outgoing.as_bytes()
    assert wire.isascii()
    assert wire.count(b"\n") == wire.count(b"\r\n")
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
    header_block = wire.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in header_block.split(b"\r\n")) <= 998


def test_non_ascii_subject_and_names_round_trip() -> None:
    subject = "Reçu — 25 000,00 € pour l'investissement n° 12345 dans le fonds « Soleil » 山田"
    outgoing = make_email(
        sender='"Zoë, OWNLY" <zoe@ownly.com>',
        to="山田太郎 <taro@ownly.com>",
        subject=subject,
        text="Bonjour Zoë, votre reçu de 25 000,00 €.\n",
    )
    message = parsed(outgoing)
    assert message["Subject"] == subject
    assert b"=?utf-8?" in outgoing.as_bytes()
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Zoë, OWNLY", "zoe@ownly.com")
    to = message["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("山田太郎", "taro@ownly.com")
    plain = next(iter(message.iter_parts()))
    assert isinstance(plain, EmailMessage)
    assert content(plain) == "Bonjour Zoë, votre reçu de 25 000,00 €.\n"


def test_a_subject_that_looks_like_an_encoded_word_stays_literal() -> None:
    subject = "Literally =?utf-8?q?not_decoded?= please"
    assert parsed(make_email(subject=subject))["Subject"] == subject


def test_a_long_subject_folds_and_unfolds_exactly() -> None:
    subject = " ".join(f"word{i}" for i in range(120))
    outgoing = make_email(subject=subject)
    assert b"\r\n word" in outgoing.as_bytes()
    assert parsed(outgoing)["Subject"] == subject


def test_the_same_email_gives_the_same_bytes() -> None:
    outgoing = make_email()
    assert outgoing.as_bytes() == outgoing.as_bytes()
    assert make_email().as_bytes() == outgoing.as_bytes()
    changed = replace(outgoing, html="<p>Thank you, John.</p>")
    assert parsed(changed).get_boundary() != parsed(outgoing).get_boundary()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"text": None},
        {"html": None, "reply_to": None, "headers": ()},
        {"subject": "Zoë's receipt: =?utf-8?q?not_encoded?= " + "word " * 40},
        {"sender": "山田太郎 <taro@ownly.com>", "to": '"Doe, Jane" <jane@bücher.example>'},
    ],
)
def test_the_header_classes_made_once_give_the_standard_bytes(
    changes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    outgoing = make_email(**changes)
    made_once = outgoing.as_bytes()
    standard = message_module._WIRE.clone(header_factory=HeaderRegistry())
    monkeypatch.setattr(message_module, "_WIRE", standard)
    assert outgoing.as_bytes() == made_once


def test_the_email_is_frozen_and_dates_keep_their_zone() -> None:
    outgoing = make_email(date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert parsed(outgoing)["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    with pytest.raises(AttributeError):
        outgoing.subject = "changed"  # type: ignore[misc]
