"""``[records.<name>]``: what a record's table takes, and how a bad one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import load_settings
from engine.errors import ConfigError
from engine.records.config import RecordConfig

DEAL = (
    "[records.deal]\nstore = 'http'\nurl = 'https://platform.example/api/deals/'\n"
    "secret_env = 'DEAL_RECORDS_SECRET'\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ownly.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_table_is_a_record_in_the_order_of_the_file(tmp_path: Path) -> None:
    text = "[records.investor]\n" + DEAL + "timeout = '5s'\n"
    records = load_settings(write(tmp_path, text), {}).section("records").records
    assert list(records) == ["investor", "deal"]
    assert records["investor"] == RecordConfig(store="table")
    deal = records["deal"]
    assert (deal.store, deal.url, deal.secret_env, deal.timeout) == (
        "http",
        "https://platform.example/api/deals",  # PATCH {url}/{id}: no slash doubled
        "DEAL_RECORDS_SECRET",
        5.0,
    )
    assert records["investor"].timeout == 10.0


def test_without_a_table_there_is_no_record(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), {}).section("records").records == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            DEAL + "tiemout = '5s'\n",
            "ownly.toml:5: [records.deal] tiemout: unknown key; did you mean 'timeout'?",
            id="typo",
        ),
        pytest.param(
            "[records.deal]\nstore = 'ftp'\n",
            "ownly.toml:2: [records.deal] store: Input should be 'table' or 'http' (got 'ftp')",
            id="store",
        ),
        pytest.param(
            "[records.deal]\nstore = 'http'\n",
            "ownly.toml:1: [records.deal]: Value error, store = 'http' needs url and secret_env",
            id="http-incomplete",
        ),
        pytest.param(
            "[records.investor]\nurl = 'https://platform.example'\n",
            "ownly.toml:2: [records.investor] url: Value error, is read only with store = 'http'",
            id="url-of-a-table",
        ),
        pytest.param(
            "[records.investor]\ntimeout = '5s'\n",
            "ownly.toml:2: [records.investor] timeout: Value error, is read only with store",
            id="timeout-of-a-table",
        ),
        pytest.param(
            DEAL.replace("https://platform.example/api/deals/", "ftp://platform.example"),
            "ownly.toml:3: [records.deal] url: Value error, must be an http:// or https:// URL",
            id="url-scheme",
        ),
        pytest.param(
            DEAL.replace("DEAL_RECORDS_SECRET", "whsec_abc+/="),
            "ownly.toml:4: [records.deal] secret_env: String should match pattern",
            id="a-secret-in-place-of-its-variable",
        ),
        pytest.param(
            DEAL + "timeout = true\n",
            "ownly.toml:5: [records.deal] timeout: Value error, must not be true or false",
            id="boolean",
        ),
        pytest.param(
            "[records.Investor]\n",
            "ownly.toml:1: [records.Investor]: a record's name is lower-case letters, digits",
            id="name",
        ),
        pytest.param(
            "[records]\ndeal = 5\n",
            "ownly.toml:2: [records.deal]: Input should be a valid dictionary",
            id="not-a-table",
        ),
    ],
)
def test_a_bad_record_is_named_with_its_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), {})
    assert caught.value.message.startswith(f"{tmp_path}/{expected}"), caught.value.message


def test_the_secret_variable_is_never_an_override(tmp_path: Path) -> None:
    path = write(tmp_path, DEAL.replace("DEAL_RECORDS_SECRET", "OWNLY_RECORDS_SECRET"))
    records = load_settings(path, {"OWNLY_RECORDS_SECRET": "whsec_x"}).section("records").records
    assert records["deal"].secret_env == "OWNLY_RECORDS_SECRET"
    with pytest.raises(ConfigError, match=r"OWNLY_RECORDS_DEAL: \[records\] deal: unknown key"):
        load_settings(path, {"OWNLY_RECORDS_DEAL": "x"})
