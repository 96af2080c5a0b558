"""Sending through a running engine's email API, and waiting on the email log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def send(api: httpx.Client, template: str, to: str, data: dict[str, Any], **headers: str) -> str:
    """``POST /api/emails/send-template``; the email's id."""
    answer = api.post(
        "/api/emails/send-template",
        json={"template": template, "to": to, "data": data},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    email_id: str = answer.json()["id"]
    return email_id


def email_log(api: httpx.Client, email_id: str) -> dict[str, Any]:
    """``GET /api/emails/logs/{id}``."""
    answer = api.get(f"/api/emails/logs/{email_id}")
    assert answer.status_code == 200, answer.text
    log: dict[str, Any] = answer.json()
    return log


def wait_log(
    api: httpx.Client,
    email_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 15,
) -> dict[str, Any]:
    """The email's log once ``until`` holds for it, else as it is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        log = email_log(api, email_id)
        if until(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def receipt(name: str = "Bob", email: str = "bob@example.com") -> dict[str, Any]:
    """The data of the ``investment_receipt`` template."""
    return {
        "investor": {"email": email, "name": name},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "amount": "2500.00",
        "currency": "usd",
    }
