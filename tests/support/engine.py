"""An engine with the shipped catalog and a webhook aimed at a real loopback receiver."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.support.process import EngineProcess, write_project
from tests.support.receiver import Receiver
from tests.support.rules import RECEIVER_WEBHOOK, install_catalog

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
KEY = "test-key-with-every-scope"
READ_KEY = "reader-key"

ENGINE_TOML = (
    '[webhooks]\nallow_networks = ["127.0.0.0/8"]\n'
    "[queue]\npoll_interval = '200ms'\n"
    "[[api.keys]]\nname = 'test'\nscopes = ['admin']\nkey_env = 'TEST_KEY'\n"
    "[[api.keys]]\nname = 'reader'\nscopes = ['events:read']\nkey_env = 'READ_KEY'\n"
)


def start_engine(
    root: Path,
    receiver: Receiver,
    extra_toml: str = "",
    env: dict[str, str] | None = None,
    *,
    webhooks: str = RECEIVER_WEBHOOK,
) -> EngineProcess:
    write_project(root, extra_toml=ENGINE_TOML + extra_toml)
    install_catalog(root, webhooks=webhooks)
    process = EngineProcess(
        root,
        env={
            "TEST_KEY": KEY,
            "READ_KEY": READ_KEY,
            "RECEIVER_URL": receiver.url + "/hooks",
            "RECEIVER_SECRET": SECRET,
            **(env or {}),
        },
    )
    try:
        process.wait_ready()
    except BaseException:
        process.kill()
        raise
    return process


def client(engine: EngineProcess, key: str = KEY, timeout: float = 5.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=engine.url, headers=headers, timeout=timeout)
