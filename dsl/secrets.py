"""Strings that look like credentials, and every string a definition holds.

A rule file brings secrets in by reference (`env("NAME")`): a string that
looks like a key, a token or a URL that is itself a credential is refused
wherever it is written (`dsl.lowering.Lowering.refuse_secrets`).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
import urllib.parse
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

from dsl import ast

__all__ = ["KINDS", "SECRET_QUERY", "secret_kind", "strings"]

# One alternation, one named group per kind of credential: one regex search
# per string literal.
KINDS = MappingProxyType(
    {
        "stripe": ("a Stripe key", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}"),
        "whsec": ("a webhook signing secret", r"\bwhsec_[A-Za-z0-9+/=]{8,}"),
        "sendgrid": ("a SendGrid key", r"\bSG\.[A-Za-z0-9_-]{10,}"),
        "mailgun": ("a Mailgun key", r"\bkey-[0-9a-f]{32}\b"),
        "aws": ("an AWS access key", r"\bAKIA[0-9A-Z]{16}\b"),
        "github": ("a GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
        "slack": ("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
        "bearer": ("a bearer token", r"\bBearer\s+[A-Za-z0-9._~+/-]{16,}"),
        "pem": ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY"),
    }
)


# Names of query parameters that carry a credential in a URL (`?token=...`).
_QUERY_SECRET_NAMES = "token|key|api_key|apikey|access_token|secret|signature|password"  # noqa: S105

# URLs that are credentials themselves: whoever has one can post to it.
_HOOK_URL_KINDS = MappingProxyType(
    {
        "slack_hook": (
            "a Slack webhook URL",
            r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+",
        ),
        "discord_hook": (
            "a Discord webhook URL",
            r"discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]+",
        ),
    }
)
_HOOK_URLS = re.compile("|".join(f"(?P<{k}>{p})" for k, (_, p) in _HOOK_URL_KINDS.items()))
# A credential's value in a query: a token-like run, not a placeholder (`{{ token }}`).
_QUERY_CREDENTIAL = re.compile(
    rf"(?:^|&)(?:{_QUERY_SECRET_NAMES})=(?![{{$%])[A-Za-z0-9._~+/-]{{8,}}", re.I
)
# A query parameter named for a credential, whatever its value.
SECRET_QUERY = re.compile(rf"(^|&)({_QUERY_SECRET_NAMES})=", re.I)


def _secrets_pattern() -> re.Pattern[str]:
    """One search for every kind, in the table's order.

    The kinds that start at a word boundary share one `\\b` in front of their
    alternation: the search then tries them only where a word starts, three
    times faster over a URL than with a `\\b` in each. They come first in the
    table, so the order of the alternatives is the table's.
    """
    bounded = [(k, p[2:]) for k, (_, p) in KINDS.items() if p.startswith(r"\b")]
    others = [(k, p) for k, (_, p) in KINDS.items() if not p.startswith(r"\b")]
    assert list(KINDS)[: len(bounded)] == [k for k, _ in bounded]
    words = "|".join(f"(?P<{k}>{p})" for k, p in bounded)
    return re.compile("|".join([rf"\b(?:{words})", *(f"(?P<{k}>{p})" for k, p in others)]))


_SECRETS = _secrets_pattern()


# Rules repeat their strings (env() names, enum values, domains): each is searched once.
@functools.lru_cache(maxsize=4096)
def secret_kind(text: str) -> str | None:
    """What kind of credential `text` looks like, if any."""
    found = _SECRETS.search(text)
    if found is not None and found.lastgroup:
        return KINDS[found.lastgroup][0]
    return _url_secret_kind(text)


def _url_secret_kind(text: str) -> str | None:
    """A URL in `text` that is a credential, or carries one (a password, a query token).

    Plain substring tests come first: nearly every string in rules passes
    none of them and costs no search. URLs are taken apart by `urlsplit`,
    not by a pattern, which over a long string could take quadratic time.
    """
    if "hooks.slack.com/" in text or "/api/webhooks/" in text:
        found = _HOOK_URLS.search(text)
        if found is not None and found.lastgroup:
            return _HOOK_URL_KINDS[found.lastgroup][0]
    if "://" not in text or not ("@" in text or "=" in text):
        return None
    for word in text.split():
        if "://" not in word:
            continue
        try:
            parts = urllib.parse.urlsplit(word)
            password = parts.password
        except ValueError:  # not a URL after all (a bad port, a stray bracket)
            continue
        if password:
            return "a URL with a password"
        if _QUERY_CREDENTIAL.search(parts.query):
            return "a URL with a credential in its query"
    return None


def strings(node: object) -> Iterator[tuple[str, ast.Span]]:
    """Every string written in a syntax tree: string literals, quoted map keys, enum values.

    The tree is walked through every field that may hold nodes, so that a
    string in a statement no check reads (an unused const, a description,
    an unknown attribute) is found as well as one in a `when`.
    """
    stack: list[Any] = [node]  # nodes of any type, told apart by `type()`, faster than isinstance
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is ast.Literal:
            if isinstance(item.value, str):
                yield item.value, item.span
        elif kind is tuple:
            push(item)
        elif kind is ast.EnumType:
            for value in item.values:
                yield value, item.span
        else:
            if kind is ast.MapEntry and item.quoted:
                yield item.key, item.span
            children = _CHILDREN.get(kind, _UNKNOWN)
            if children is _UNKNOWN:
                children = _CHILDREN[kind] = _children(kind)
            if children is not None:
                push(children(item))


# The types of fields that hold names, operators, spans, numbers or flags: no node below them.
_LEAVES = frozenset({"Span", "str", "str | None", "bool", "int", "Decimal", "tuple[str, ...]"})

_Children = Callable[[Any], tuple[object, ...]]
_CHILDREN: dict[type, _Children | None] = {}
_UNKNOWN: _Children = lambda node: ()  # noqa: E731 - a marker, never called


def _children(kind: type) -> _Children | None:
    """What gives the fields of a node that may hold nodes (None: a leaf, or no node at all).

    An `attrgetter` of the fields: three times faster than `getattr` for each.
    """
    if not dataclasses.is_dataclass(kind) or kind.__module__ != ast.__name__:
        return None
    names = [f.name for f in dataclasses.fields(kind) if f.type not in _LEAVES]
    if not names:
        return None
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda node: (get(node),)
    return operator.attrgetter(*names)
