"""``ownly webhooks ...`` against the engine as a process, as an operator runs it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.engine import ENGINE_TOML, KEY, READ_KEY, SECRET, client
from tests.support.process import EngineProcess, ownly, write_project
from tests.support.receiver import Receiver
from tests.support.rules import install_catalog, investment

pytestmark = pytest.mark.acceptance

ONE_ATTEMPT = """
webhook receiver {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [investment.*]
  retry     1 times
}
"""


@pytest.fixture
def engine(tmp_path: Path, receiver: Receiver) -> Iterator[EngineProcess]:
    write_project(tmp_path, extra_toml=ENGINE_TOML)
    install_catalog(tmp_path, webhooks=ONE_ATTEMPT)
    env = {
        "TEST_KEY": KEY,
        "READ_KEY": READ_KEY,
        "RECEIVER_URL": receiver.url + "/hooks",
        "RECEIVER_SECRET": SECRET,
    }
    process = EngineProcess(tmp_path, env=env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.kill()


def cli(engine: EngineProcess, *args: str, key: str = KEY) -> tuple[int, str]:
    done = ownly("webhooks", *args, "--url", engine.url, cwd=engine.cwd, env={"OWNLY_API_KEY": key})
    return done.returncode, done.stdout + done.stderr


def failed_delivery(engine: EngineProcess) -> str:
    with client(engine) as api:
        api.post("/api/events", json=investment("evt_cli"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = api.get("/api/webhooks/receiver/deliveries", params={"state": "failed"})
            if found.json()["deliveries"]:
                return str(found.json()["deliveries"][0]["id"])
            time.sleep(0.05)
    raise AssertionError("no failed delivery")


def test_an_operator_lists_finds_and_retries_a_failed_delivery(
    engine: EngineProcess, receiver: Receiver
) -> None:
    receiver.answer = lambda request, nth: web.Response(status=500)
    delivery = failed_delivery(engine)
    receiver.answer = lambda request, nth: web.Response(status=200)

    code, listed = cli(engine, "list")
    assert code == 0, listed
    assert "receiver" in listed and "webhooks.ownly:2" in listed

    code, found = cli(engine, "deliveries", "receiver", "--state", "failed")
    assert code == 0, found
    assert delivery in found and "evt_cli" in found and "HTTP 500" in found

    code, retried = cli(engine, "retry", "receiver", delivery)
    assert code == 0, retried
    assert retried.strip().startswith(f"delivery {delivery}: delivered (200)")
    assert retried.strip().endswith("now succeeded")
    assert len(receiver.snapshot()) == 2


def test_recover_requeues_and_says_how_many(engine: EngineProcess, receiver: Receiver) -> None:
    receiver.answer = lambda request, nth: web.Response(status=500)
    failed_delivery(engine)
    receiver.answer = lambda request, nth: web.Response(status=200)
    code, out = cli(engine, "recover", "receiver", "--since", "2020-01-01T00:00:00Z")
    assert code == 0, out
    assert out.strip() == "re-queued 1 failed deliveries of receiver"
    receiver.wait_for(2)


@pytest.mark.parametrize(
    ("args", "key", "expected"),
    [
        (("deliveries", "nope"), KEY, "404 not_found"),
        (("retry", "receiver", "12345"), KEY, "404 not_found"),
        (("recover", "receiver", "--since", "yesterday"), KEY, "400 invalid_window"),
        (("list",), READ_KEY, "403 forbidden"),
    ],
)
def test_api_errors_are_one_readable_line_and_exit_1(
    engine: EngineProcess, args: tuple[str, ...], key: str, expected: str
) -> None:
    code, out = cli(engine, *args, key=key)
    assert code == 1
    assert out.startswith(f"error: {expected}")
    assert "Traceback" not in out


def test_an_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    done = ownly(
        "webhooks",
        "list",
        "--url",
        "http://127.0.0.1:9",
        cwd=tmp_path,
        env={"OWNLY_API_KEY": "k"},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach the engine at http://127.0.0.1:9")


def test_in_development_the_address_and_key_come_from_the_project(
    tmp_path: Path, receiver: Receiver
) -> None:
    write_project(tmp_path, extra_toml='[webhooks]\nallow_networks = ["127.0.0.0/8"]\n')
    install_catalog(tmp_path, webhooks=ONE_ATTEMPT)
    env = {"RECEIVER_URL": receiver.url + "/hooks", "RECEIVER_SECRET": SECRET}
    process = EngineProcess(tmp_path, env=env)
    try:
        process.wait_ready()
        done = ownly(
            "webhooks",
            "test",
            "receiver",
            cwd=tmp_path,
            env={**env, "OWNLY_SERVER_PORT": str(process.port)},
        )
    finally:
        process.kill()
    assert done.returncode == 0, done.stderr
    assert ": delivered (200)" in done.stdout
    (arrived,) = receiver.snapshot()
    assert arrived.headers["X-Event-Type"] == "webhook.test"
