"""The outgoing email: strictly checked addresses and headers, and its MIME form.

Every value that reaches a header is refused when it holds CR, LF or NUL, so
no caller input can add a header or a recipient. An ``OutgoingEmail`` is
checked when it is made; once it exists, every provider can send it as it is.

``as_bytes`` is the same on every call for the same email: the multipart
boundary is derived from the content, not drawn at random, so a retry sends
(and the outbox writes) the very bytes of the first attempt.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from typing import Any

from email_validator import EmailNotValidError, validate_email

from connectors.errors import ConnectorError

__all__ = [
    "EMAIL_ID_HEADER",
    "InvalidEmail",
    "OutgoingEmail",
    "check_header",
    "make_message_id",
    "parse_address",
]

EMAIL_ID_HEADER = "X-Ownly-Email-Id"

_FORBIDDEN = ("\r", "\n", "\0")
# The other characters str.splitlines() breaks at: the email package refuses a header
# value holding one (as it does CR and LF) only when the message is made.
_LINE_SEPARATORS = ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_HEADER_LIMIT = 998  # RFC 5322 2.1.1: a line, CRLF excluded
_ADDRESS_LIMIT = 254  # RFC 5321 4.5.3.1.3, less the angle brackets of a path
_NAME_LIMIT = 256
_CATEGORY_LIMIT = 128  # Mailgun's tag limit; SendGrid allows 255
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext: printable ASCII but ':'
_EMAIL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # also a file name: no '/', no '.'
_MESSAGE_ID = re.compile(r"^<[!-;=?A-~]+@[!-;=?A-~]+>$")  # printable ASCII but '<', '>', '@'
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_UNQUOTED_NAME_SPECIALS = frozenset('<>,;:"()[]\\')
# Headers the message sets itself, and those that would add recipients or change MIME.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "Sender",
        "Return-Path",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        EMAIL_ID_HEADER,
    )
)


class InvalidEmail(ConnectorError):
    """The email is not valid.

    Attributes:
        field: what is wrong: ``from``, ``to``, ``reply_to``, ``subject``,
            ``headers``, ``email_id``, ``message_id``, ``date``, ``category`` or ``body``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def check_header(value: str, field: str) -> str:
    """The value, when it can be a header's: one line, no NUL, at most 998 characters.

    No CR or LF, nor any other character ``str.splitlines`` breaks a line at.

    Raises:
        InvalidEmail: naming ``field``.
    """
    if not isinstance(value, str):
        raise InvalidEmail(field, f"must be text, not {type(value).__name__}")
    _refuse_line_breaks(value, field)
    for char in _LINE_SEPARATORS:
        if char in value:
            raise InvalidEmail(field, f"holds {char!r}; a header is one line")
    if len(value) > _HEADER_LIMIT:
        raise InvalidEmail(field, f"is {len(value)} characters long; at most {_HEADER_LIMIT}")
    return value


def parse_address(text: str, field: str) -> Address:
    """One address, as ``addr@domain`` or ``Name <addr@domain>``; nothing else.

    The display name may be any text (non-ASCII is sent as encoded words) and
    may be quoted: ``"Doe, Jane" <jane@ownly.com>``. The address itself must be
    ASCII before the @ (an internationalized domain is sent in its IDNA form),
    and is checked by ``email_validator`` without any DNS lookup.

    Raises:
        InvalidEmail: naming ``field``, for line breaks, two addresses, a missing
            @ or an address that is not valid.
    """
    check_header(text, field)
    text = text.strip()
    if text.endswith(">"):
        start = text.rfind("<")
        if start == -1:
            raise InvalidEmail(field, "has a '>' with no '<' before it")
        name = _display_name(text[:start].strip(), field)
        addr_spec = text[start + 1 : -1].strip()
    else:
        name, addr_spec = "", text
    if not addr_spec:
        raise InvalidEmail(field, "has no address")
    if "," in addr_spec or ";" in addr_spec or "<" in addr_spec:
        raise InvalidEmail(field, "holds more than one address; give exactly one")
    if any(char.isspace() for char in addr_spec):
        raise InvalidEmail(field, "the address holds a space; write a name as Name <addr>")
    if "@" not in addr_spec:
        raise InvalidEmail(field, f"{addr_spec!r} is not an address: it has no @")
    if len(addr_spec) > _ADDRESS_LIMIT:
        raise InvalidEmail(
            field, f"the address is {len(addr_spec)} characters long; at most {_ADDRESS_LIMIT}"
        )
    try:
        valid = validate_email(addr_spec, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(field, f"{addr_spec!r} is not a valid address: {exc}") from None
    try:
        return Address(display_name=name, addr_spec=valid.ascii_email or valid.normalized)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise InvalidEmail(field, f"{addr_spec!r} is not a valid address: {exc}") from None


def _display_name(name: str, field: str) -> str:
    if len(name) > _NAME_LIMIT:
        raise InvalidEmail(field, f"the name is {len(name)} characters long; at most {_NAME_LIMIT}")
    if name.startswith('"'):
        return _unquote(name, field)
    bad = sorted(set(name) & _UNQUOTED_NAME_SPECIALS)
    if "," in bad or ";" in bad or "<" in bad or ">" in bad:
        raise InvalidEmail(field, "holds more than one address; give exactly one")
    if bad:
        raise InvalidEmail(
            field, f"the name holds {''.join(bad)!r}; put such a name in double quotes"
        )
    return name


def _unquote(name: str, field: str) -> str:
    chars: list[str] = []
    escaped = False
    for position, char in enumerate(name[1:], start=1):
        if escaped:
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if position != len(name) - 1:
                raise InvalidEmail(field, "the quoted name is followed by more text")
            return "".join(chars)
        else:
            chars.append(char)
    raise InvalidEmail(field, "the quoted name has no closing '\"'")


def make_message_id(email_id: str, domain: str) -> str:
    """The Message-ID header value for an email: ``<{email_id}@{domain}>``."""
    _check_email_id(email_id)
    if not _DOMAIN.match(domain):
        raise InvalidEmail("message_id", f"{domain!r} is not a domain name")
    return f"<{email_id}@{domain}>"


def _check_email_id(email_id: str) -> None:
    if not isinstance(email_id, str) or not _EMAIL_ID.match(email_id):
        raise InvalidEmail(
            "email_id", f"{email_id!r} is not an id: 1 to 128 letters, digits, '_' or '-'"
        )


def _refuse_line_breaks(value: str, field: str) -> None:
    for char in _FORBIDDEN:
        if char in value:
            raise InvalidEmail(field, f"holds {char!r}; a header is one line with no NUL")


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, each header's class made once.

    ``HeaderRegistry`` makes a new class for every header it parses (8 µs here,
    31 times for a message of two parts: a quarter of making it); the class
    depends only on the header's name, so the first one made for a name serves
    every later header of it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


class _WirePolicy(email.policy.EmailPolicy):
    """``email.policy.SMTP`` in 7 bits, with two corrections to how headers fold.

    The standard folder turns a word too long for a 78-character line into
    encoded words, which would break a ``List-Unsubscribe`` URL: an ASCII value
    is folded at its spaces instead (its lines may pass 78 characters, never
    998: ``check_header`` saw to that). And it writes a literal ``=?...?=`` as
    it is, which a reader would decode: such a text is sent encoded whole.
    """

    def fold(self, name: str, value: str) -> str:
        folded = self._fold_text(name, value)
        if folded is None:
            folded = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = self._fold_text(name, value)
        if folded is None:
            return super().fold_binary(name, value)
        return folded.encode("ascii")

    def _fold_text(self, name: str, value: str) -> str | None:
        text = str(value)
        if any(char in text for char in _FORBIDDEN):
            return None
        if "=?" in text:
            if not isinstance(value, UnstructuredHeader):
                return None
            encoded = Header(text, "utf-8", header_name=name).encode(linesep=self.linesep)
            return f"{name}: {encoded}{self.linesep}"
        if text.isascii():
            return _fold_at_spaces(name, text, self.linesep)
        return None


def _literal(value: str) -> str:
    """The value to assign to an unstructured header so that it is kept as it is.

    Assigning a string parses it as a raw header, decoding any ``=?...?=`` in
    it; the encoded form decodes back to the text itself.
    """
    if "=?" not in value:
        return value
    # Unfolded: the space between two encoded words is not part of the text.
    return Header(value, "utf-8").encode(linesep="\n").replace("\n", "")


def _fold_at_spaces(name: str, value: str, linesep: str) -> str:
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line != f"{name}:" and word:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return linesep.join(lines) + linesep


_WIRE = _WirePolicy(linesep="\r\n", cte_type="7bit", header_factory=_HeaderClasses())


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to one recipient, checked when made.

    The addresses are kept as ``parse_address`` reads them: ``sender``, ``to``
    and ``reply_to`` hold the normalized form (a lowercased domain, a quoted
    name where quotes are needed).

    Attributes:
        email_id: Ownly's id for the email (``eml_01J...``): its identity at every
            provider, ``X-Ownly-Email-Id`` in the message, the outbox file's name.
        message_id: the whole Message-ID value, ``<...@domain>``, the same on every attempt.
        sender: the From address.
        to: the one recipient.
        subject: one line of at most 998 characters.
        html: the HTML body.
        text: the plain-text body; at least one of ``html`` and ``text`` is given.
        date: the Date header; an aware datetime.
        reply_to: the Reply-To address.
        headers: extra headers (``List-Unsubscribe``, ``List-Unsubscribe-Post``);
            they cannot replace one the message sets itself, nor add recipients.
        category: a provider-side label (a SendGrid category, a Mailgun tag).

    Raises:
        InvalidEmail: for the first value that is not valid.
    """

    email_id: str
    message_id: str
    sender: str
    to: str
    subject: str
    html: str | None
    text: str | None
    date: datetime
    reply_to: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    category: str | None = None
    # sender, to and reply_to parsed, once: each parse is a full validation
    _parsed: tuple[Address, Address, Address | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_email_id(self.email_id)
        check_header(self.message_id, "message_id")
        if not _MESSAGE_ID.match(self.message_id):
            raise InvalidEmail(
                "message_id", f"{self.message_id!r} is not a Message-ID: <left@right>"
            )
        sender = parse_address(self.sender, "from")
        to = parse_address(self.to, "to")
        reply_to = None if self.reply_to is None else parse_address(self.reply_to, "reply_to")
        self._set("_parsed", (sender, to, reply_to))
        self._set("sender", str(sender))
        self._set("to", str(to))
        if reply_to is not None:
            self._set("reply_to", str(reply_to))
        check_header(self.subject, "subject")
        if not isinstance(self.date, datetime) or self.date.utcoffset() is None:
            raise InvalidEmail("date", "must be an aware datetime (with a time zone)")
        for body in (self.text, self.html):
            if body is not None and (not isinstance(body, str) or "\0" in body):
                raise InvalidEmail("body", "a body is text with no NUL")
        if not (self.text or self.html):
            raise InvalidEmail("body", "give html, text or both")
        self._set("headers", tuple(self._check_headers()))
        if self.category is not None:
            check_header(self.category, "category")
            if not 0 < len(self.category) <= _CATEGORY_LIMIT or not self.category.isascii():
                raise InvalidEmail(
                    "category", f"1 to {_CATEGORY_LIMIT} ASCII characters, not {self.category!r}"
                )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _check_headers(self) -> list[tuple[str, str]]:
        checked = []
        seen = set()
        for pair in self.headers:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InvalidEmail("headers", f"{pair!r} is not a (name, value) pair")
            name, value = pair
            if not isinstance(name, str) or not _FIELD_NAME.match(name):
                raise InvalidEmail("headers", f"{name!r} is not a header name")
            if name.lower() in _RESERVED:
                raise InvalidEmail("headers", f"{name} is set by the message itself")
            if name.lower() in seen:  # an HTTP API takes headers as a JSON object
                raise InvalidEmail("headers", f"{name} is given twice")
            seen.add(name.lower())
            check_header(value, "headers")
            if len(name) + 2 + len(value) > _HEADER_LIMIT:
                raise InvalidEmail("headers", f"{name} is longer than {_HEADER_LIMIT} characters")
            checked.append((name, value))
        return checked

    @property
    def sender_address(self) -> Address:
        """The From address, parsed."""
        return self._parsed[0]

    @property
    def to_address(self) -> Address:
        """The recipient, parsed."""
        return self._parsed[1]

    @property
    def reply_to_address(self) -> Address | None:
        """The Reply-To address, parsed; None when there is none."""
        return self._parsed[2]

    def mime(self) -> EmailMessage:
        """The message: one part, or ``multipart/alternative`` of text then HTML, in UTF-8."""
        message = EmailMessage(policy=_WIRE)
        message["From"] = self.sender_address
        message["To"] = self.to_address
        message["Subject"] = _literal(self.subject)
        message["Date"] = email.utils.format_datetime(self.date)
        message["Message-ID"] = self.message_id
        reply_to = self.reply_to_address
        if reply_to is not None:
            message["Reply-To"] = reply_to
        message["MIME-Version"] = "1.0"
        for name, value in self.headers:
            message[name] = _literal(value)
        message[EMAIL_ID_HEADER] = self.email_id
        if self.text and self.html:
            message.set_content(self.text, subtype="plain", charset="utf-8")
            message.add_alternative(self.html, subtype="html", charset="utf-8")
            for part in message.iter_parts():
                del part["MIME-Version"]
            message.set_boundary(self._boundary())
        elif self.text:
            message.set_content(self.text, subtype="plain", charset="utf-8")
        else:
            message.set_content(self.html or "", subtype="html", charset="utf-8")
        return message

    def as_bytes(self) -> bytes:
        """The message as sent: ASCII, CRLF line endings, the same bytes on every call."""
        return self.mime().as_bytes(policy=_WIRE)

    def _boundary(self) -> str:
        digest = hashlib.sha256()
        for piece in (self.email_id, self.text or "", self.html or ""):
            digest.update(piece.encode("utf-8", "surrogatepass") + b"\0")
        # '=_' can appear in neither quoted-printable nor base64 text.
        return f"=_ownly_{digest.hexdigest()[:40]}"
