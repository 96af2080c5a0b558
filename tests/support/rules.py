"""Rule files for tests: the shipped catalog plus webhooks aimed at a loopback receiver."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).parents[2]

RECEIVER_WEBHOOK = """
webhook receiver {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [investment.*, deal.created]
  retry     5 times, exponential 1s .. 2s
  timeout   5s
}
"""


def install_catalog(root: Path, *, webhooks: str = RECEIVER_WEBHOOK) -> None:
    """The shipped event catalog and ``webhooks`` as the project's only rules."""
    rules = root / "rules"
    rules.mkdir(exist_ok=True)
    shutil.copy(ROOT / "rules" / "catalog.ownly", rules / "catalog.ownly")
    (rules / "webhooks.ownly").write_text(webhooks, encoding="utf-8")
    (root / "templates").mkdir(exist_ok=True)


def investment(event_id: str | None = None, amount: str = "2500.00") -> dict[str, object]:
    """A valid ``investment.created`` event."""
    event: dict[str, object] = {
        "type": "investment.created",
        "data": {
            "investment_id": "inv_1",
            "user_id": "usr_1",
            "deal_id": "deal_1",
            "amount": amount,
            "status": "pending",
            "investor": {"email": "ada@example.com", "name": "Ada"},
            "deal": {"id": "deal_1", "name": "Harbour Lofts"},
            "created_at": "2026-11-26T10:00:00Z",
        },
    }
    if event_id is not None:
        event["id"] = event_id
    return event


def install_emails(root: Path) -> None:
    """The shipped email templates (rules/emails.ownly and templates/) beside the catalog."""
    rules = root / "rules"
    rules.mkdir(exist_ok=True)
    shutil.copy(ROOT / "rules" / "emails.ownly", rules / "emails.ownly")
    shutil.copytree(ROOT / "templates", root / "templates", dirs_exist_ok=True)
