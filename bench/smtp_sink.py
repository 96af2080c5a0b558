"""The SMTP server the email benchmarks send to (aiosmtpd on uvloop), in a process of its own.

sink, port = start()            # takes every message on 127.0.0.1:port
sink, port = start(refuse=5.0)  # answers every RCPT 451 after 5 s: nothing is taken
taken(sink)                     # how many messages it has taken so far
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import uvloop
from aiosmtpd.smtp import SMTP

__all__ = ["start", "taken"]

ROOT = Path(__file__).resolve().parents[1]


def start(refuse: float | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start the sink; answer the process and the port it listens on."""
    args = [sys.executable, "-m", "bench.smtp_sink"] + ([str(refuse)] if refuse is not None else [])
    # A module, not a script: bench/ first on the path would hide the standard ``email``.
    process = subprocess.Popen(
        args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def taken(sink: subprocess.Popen[str]) -> int:
    """The messages the sink has taken: it answers each line on its stdin with the count."""
    assert sink.stdin is not None and sink.stdout is not None
    sink.stdin.write("\n")
    sink.stdin.flush()
    return int(sink.stdout.readline())


class _Handler:
    def __init__(self, refuse: float | None) -> None:
        self.refuse = refuse
        self.messages = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse is not None:
            await asyncio.sleep(self.refuse)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        return "250 2.0.0 Ok: queued"


def _serve(refuse: float | None) -> None:
    handler = _Handler(refuse)

    def answer() -> None:  # the count, for each line the parent writes
        for _ in sys.stdin:
            print(handler.messages, flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.local", ident="bench-sink"),
            "127.0.0.1",
            0,
            backlog=1024,
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        threading.Thread(target=answer, daemon=True).start()
        await asyncio.Event().wait()

    uvloop.run(main())


if __name__ == "__main__":
    _serve(float(sys.argv[1]) if len(sys.argv) > 1 else None)
