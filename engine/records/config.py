"""``[records.<name>]`` in ``ownly.toml``: the records a workflow may update, and where each lives.

Each table names one record (``investor``, ``deal``)::

    [records.investor]            # store = "table": the engine's own table
    [records.deal]
    store = "http"                # the platform keeps it: PATCH {url}/{id}
    url = "https://platform.example/api/deals"
    secret_env = "DEAL_RECORDS_SECRET"   # the whsec_ secret that signs each PATCH
    timeout = "10s"

A name of no table is no record: ``update_record`` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.config import Seconds, Section

__all__ = ["RecordConfig", "RecordsConfig"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_HTTP_ONLY = "is read only with store = 'http'"


class RecordConfig(Section):
    """One record: where it is kept."""

    store: Literal["table", "http"] = "table"
    url: str | None = None  # store = "http": PATCH {url}/{id}
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: Seconds = 10.0

    @field_validator("url", "secret_env", "timeout")
    @classmethod
    def _http_only(cls, value: object, info: ValidationInfo) -> object:
        if info.data.get("store") != "http":
            raise ValueError(_HTTP_ONLY)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _complete(self) -> RecordConfig:
        if self.store == "http":
            missing = [key for key in ("url", "secret_env") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"store = 'http' needs {' and '.join(missing)}")
        return self


def _record_name(name: str) -> str:
    if not _NAME.match(name):
        raise PydanticCustomError(
            "record_name",
            "a record's name is lower-case letters, digits and _, starting with a letter, "
            "at most 100",
        )
    return name


class RecordsConfig(Section):
    """Every ``[records.<name>]`` table, by name."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[Annotated[str, AfterValidator(_record_name)], RecordConfig] = Field(
        init=False
    )
    entries: ClassVar[type[BaseModel] | None] = RecordConfig

    @property
    def records(self) -> Mapping[str, RecordConfig]:
        """The records by name, in the order of the file."""
        return self.model_extra or {}
