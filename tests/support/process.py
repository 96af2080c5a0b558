"""The engine as a subprocess on a free loopback port, as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

OWNLY = [sys.executable, "-m", "engine"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port() -> tuple[socket.socket, int]:
    """A bound port that nobody listens on: connecting to it is refused while the
    socket is open."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    return probe, probe.getsockname()[1]


def write_project(root: Path, *, extra_toml: str = "") -> Path:
    """A minimal project: ownly.toml, an empty rules/ and templates/; returns the toml path."""
    (root / "rules").mkdir(exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    path = root / "ownly.toml"
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nshutdown_grace = "3s"\n'
        '[database]\nurl = "sqlite:///var/ownly.db"\n' + extra_toml,
        encoding="utf-8",
    )
    return path


def ownly(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one ``ownly`` command to completion."""
    return subprocess.run(
        [*OWNLY, *args],
        cwd=cwd,
        env=_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _environ(env: Mapping[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OWNLY_")}
    base.update(env or {})
    return base


class EngineProcess:
    """``ownly run`` started in ``cwd`` on a free port; stopped with a signal."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = cwd
        self.environment = dict(env or {})
        environ = {"OWNLY_SERVER_PORT": str(self.port), **self.environment}
        self.log = cwd / "engine.log"
        self._log_file = self.log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [*OWNLY, "run"],
            cwd=cwd,
            env=_environ(environ),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 20) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited {self.process.returncode}:\n{self.output()}")
            try:
                response = httpx.get(self.url + "/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                return response
            time.sleep(0.05)
        raise AssertionError(f"engine not ready within {timeout}s:\n{self.output()}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5) -> int:
        """Send ``signum`` and wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log_file.close()

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(encoding="utf-8")
