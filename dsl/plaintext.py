"""Plain text from an email's HTML: the text alternative of a template without a text file.

Blocks become lines, paragraphs and headings blank-line separated, table
cells one run of words per row (a layout table reads as its lines, a data
table as "Amount 25000.00 USD"), list items "- " or "1. ", and a link keeps
its address after its text. What a reader does not see is left out: the
head, styles and scripts, images, and elements hidden by `display:none` or
`hidden` (a preheader). The HTML is expected well formed, as css_inline
serializes it: a hidden element ends at its matching end tag.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["plain_text"]

_SKIPPED = frozenset({"head", "title", "style", "script", "template"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dl", "table", "hr"}
    | {"figure", "address"}
)
_LINES = frozenset(
    {"div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "nav", "main"}
    | {"aside", "center", "caption", "figcaption", "form", "fieldset", "legend", "details"}
    | {"summary"}
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    | {"track", "wbr"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)


def plain_text(html: str) -> str:
    """The text a reader of `html` sees, without blank lines before or after it."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def _link_target(href: str) -> str | None:
    """The address a reader of the text needs, for a link that leads somewhere."""
    href = href.strip()
    scheme, _, rest = href.partition(":")
    if scheme.lower() in ("http", "https"):
        return href
    if scheme.lower() == "mailto":
        return rest.partition("?")[0] or None
    return None  # a fragment, a relative or javascript: address: nowhere to go from the text


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._break = 0  # newlines owed before the next word: 1 a line, 2 a paragraph
        self._space = False  # a space owed before the next word on the same line
        self._prefix = ""  # a list item's marker, written before its first word
        self._skip_tag: str | None = None  # the element left out, and how deep in it we are
        self._skip_depth = 0
        self._pre = 0
        self._lists: list[int | None] = []  # per open list: the next number, None unordered
        self._link: tuple[str, int] | None = None  # href, where its text starts in parts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        if tag in _VOID:
            if tag == "br":
                self._break = min(self._break + 1, 2)
            elif tag == "hr":
                self._block(2)
            return
        if tag in _SKIPPED or _hidden(attrs):
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in _PARAGRAPHS:
            self._block(2)
        elif tag in _LINES:
            self._block(1)
        elif tag in ("td", "th"):
            self._space = True
        if tag == "pre":
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._block(1 if self._lists else 2)  # a list in a list item is one of its lines
            start = dict(attrs).get("start") or "1"
            self._lists.append((int(start) if start.isdigit() else 1) if tag == "ol" else None)
        elif tag == "li":
            self._item()
        elif tag == "a":
            href = dict(attrs).get("href")
            self._link = (href, len(self.parts)) if href else None

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if not self._skip_depth:
                    self._skip_tag = None
            return
        if tag in _PARAGRAPHS:
            self._block(2)
        elif tag in _LINES:
            self._block(1)
        if tag == "pre":
            self._pre = max(self._pre - 1, 0)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            self._block(1 if self._lists else 2)
        elif tag == "a" and self._link is not None:
            self._end_link(*self._link)
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._skip_tag is not None or not data:
            return
        if self._pre:
            self._write(data)
            return
        if data[0].isspace():
            self._space = True
        words = " ".join(data.split())
        if words:
            self._write(words)
            self._space = data[-1].isspace()

    def _block(self, newlines: int) -> None:
        self._break = max(self._break, newlines)
        self._space = False

    def _item(self) -> None:
        self._block(1)
        depth = max(len(self._lists), 1)
        number = self._lists[-1] if self._lists else None
        if number is None:
            marker = "- "
        else:
            marker = f"{number}. "
            self._lists[-1] = number + 1
        self._prefix = "  " * (depth - 1) + marker

    def _end_link(self, href: str, start: int) -> None:
        target = _link_target(href)
        if target is None:
            return
        text = "".join(self.parts[start:]).strip()
        if not text:
            self._write(target)
        elif target not in text:
            self._space = True
            self._write(f"({target})")

    def _write(self, text: str) -> None:
        if self._break:
            if self.parts:
                self.parts.append("\n" * self._break)
            self._break = 0
        elif self._space and self.parts:
            self.parts.append(" ")
        self._space = False
        if self._prefix:
            self.parts.append(self._prefix)
            self._prefix = ""
        self.parts.append(text)


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden" or (name == "style" and value and _HIDDEN_STYLE.search(value)):
            return True
    return False
