"""``[email]``: what a provider's section takes and refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.email.config import SmtpConfig


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_ca_file_is_read_for_tls(security: str) -> None:
    config = SmtpConfig.model_validate(
        {"type": "smtp", "host": "relay.internal", "security": security, "ca_file": "ca.pem"}
    )
    assert config.ca_file == Path("ca.pem")


@pytest.mark.parametrize(
    "fields",
    [{"security": "none", "ca_file": "ca.pem"}, {"ca_file": 7}],
    ids=["without tls", "not a path"],
)
def test_a_ca_file_that_would_not_be_read_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        SmtpConfig.model_validate({"type": "smtp", "host": "relay.internal", **fields})
    assert caught.value.errors()[0]["loc"] == ("ca_file",)
