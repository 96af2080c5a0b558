"""Opens, clicks and unsubscribes, served by the engine itself, whatever the provider.

A tracked email's links are rewritten to ``/email/c/{token}`` and an open pixel
``/email/o/{token}`` is added at the end of its body; every email carries an
RFC 8058 one-click ``List-Unsubscribe`` to ``/email/u/{token}``. A token is the
link's payload (what it does, the email, the original URL) and an HMAC-SHA256
of it under the engine's tracking key, so a link cannot be made to point
anywhere else (no open redirect): a token that does not verify is a 404 and
records nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from aiohttp import web

from engine.core.clock import Clock
from engine.email.feedback import Change
from engine.http.common import error

__all__ = ["PIXEL", "Link", "Record", "Tracker", "add_routes"]

Link = Literal["o", "c", "u"]  # open, click, unsubscribe

# The smallest transparent GIF, answered for an open.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_MAX_TOKEN = 8192


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tracker:
    """Makes and reads the signed links of the emails sent through this engine."""

    def __init__(self, key: bytes | Callable[[], bytes], public_url: str) -> None:
        self._source = key  # the key, or what reads it when it is first needed
        self._key: bytes | None = None
        self.public_url = public_url.rstrip("/")

    def token(self, link: Link, email_id: str, url: str | None = None) -> str:
        payload = f"{link}\n{email_id}" + (f"\n{url}" if url is not None else "")
        data = payload.encode("utf-8")
        return f"{_b64(data)}.{_b64(self._sign(data))}"

    def read(self, link: Link, token: str) -> tuple[str, str | None] | None:
        """The email id and URL a ``link`` token names, or None when it does not verify."""
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        body, _, signature = token.partition(".")
        try:
            data, given = _unb64(body), _unb64(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._sign(data)):
            return None
        parts = data.decode("utf-8", errors="replace").split("\n", 2)
        if parts[0] != link or len(parts) < 2:
            return None
        return parts[1], parts[2] if len(parts) == 3 else None

    def url(self, link: Link, email_id: str, target: str | None = None) -> str:
        return f"{self.public_url}/email/{link}/{self.token(link, email_id, target)}"

    def rewrite(self, body: str, email_id: str) -> str:
        """``body`` with each http(s) link going through a click link, and an open pixel."""

        def tracked(match: re.Match[str]) -> str:
            original = html.unescape(match.group(3)).strip()
            if not original.lower().startswith(("http://", "https://")):
                return match.group(0)  # mailto:, tel:, anchors stay as they are
            quote = match.group(2)
            return f"{match.group(1)}{quote}{html.escape(self.url('c', email_id, original))}{quote}"

        rewritten = _HREF.sub(tracked, body)
        pixel = (
            f'<img src="{html.escape(self.url("o", email_id))}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(rewritten))
        if not ends:
            return rewritten + pixel
        at = ends[-1].start()
        return rewritten[:at] + pixel + rewritten[at:]

    def _sign(self, data: bytes) -> bytes:
        return hmac.new(self.load(), data, hashlib.sha256).digest()

    def load(self) -> bytes:
        """The key, read now if it was not yet."""
        if self._key is None:
            self._key = self._source if isinstance(self._source, bytes) else self._source()
        return self._key


Record = Callable[[Sequence[Change]], Awaitable[object]]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:Helvetica,Arial,sans-serif;max-width:32em;margin:4em auto;padding:0 1em">
<h1 style="font-size:1.4em">{title}</h1><p>{text}</p>{form}</body></html>"""


def add_routes(app: web.Application, tracker: Tracker, record: Record, clock: Clock) -> None:
    """The links recipients follow: ``/email/o``, ``/email/c`` and ``/email/u``."""

    def verified(request: web.Request, link: Link) -> tuple[str, str | None]:
        found = tracker.read(link, request.match_info["token"])
        if found is None:
            raise error(404, "not_found", "no such link")
        return found

    async def opened(request: web.Request) -> web.Response:
        email_id, _ = verified(request, "o")
        await record([Change(email_id, "opened", "tracking", clock.now())])
        return web.Response(
            body=PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store, private"}
        )

    async def clicked(request: web.Request) -> web.Response:
        email_id, url = verified(request, "c")
        if url is None:
            raise error(404, "not_found", "no such link")
        await record([Change(email_id, "clicked", "tracking", clock.now(), url=url)])
        raise web.HTTPFound(url, headers={"Cache-Control": "no-store, private"})

    async def unsubscribe_page(request: web.Request) -> web.Response:
        verified(request, "u")
        form = (
            f'<form method="post" action="{html.escape(request.path)}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        text = "Press the button to stop receiving emails of this kind at this address."
        return _page("Unsubscribe", text, form)

    async def unsubscribe(request: web.Request) -> web.Response:
        email_id, _ = verified(request, "u")
        # RFC 8058: the body is List-Unsubscribe=One-Click; a form's POST has none.
        change = Change(
            email_id, "unsubscribed", "tracking", clock.now(), receipt=f"unsubscribe:{email_id}"
        )
        await record([change])
        return _page("Unsubscribed", "You will not receive emails of this kind any more.", "")

    app.router.add_get("/email/o/{token}", opened)
    app.router.add_get("/email/c/{token}", clicked)
    app.router.add_get("/email/u/{token}", unsubscribe_page)
    app.router.add_post("/email/u/{token}", unsubscribe)


def _page(title: str, text: str, form: str) -> web.Response:
    body = _PAGE.format(title=title, text=text, form=form)
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})
