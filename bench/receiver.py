"""The webhook receiver the delivery benchmarks send to, in a process of its own.

receiver, port = start()   # answers 200 to every POST on 127.0.0.1:port
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import uvloop
from aiohttp import web

__all__ = ["start"]


def start() -> tuple[subprocess.Popen[str], int]:
    """Start the receiver; answer the process and the port it listens on."""
    process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _serve() -> None:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text='{"ok":true}', content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


if __name__ == "__main__":
    _serve()
