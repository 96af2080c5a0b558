"""The engine's configuration: ``ownly.toml``, validated, with ``OWNLY_*`` overrides.

Every error names where the bad value came from (``ownly.toml:7`` or the
environment variable) and the key, and suggests the closest valid key for a
typo. Secrets never appear in the file: an API key is the *name* of an
environment variable, resolved once here, held as a ``SecretStr``.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "CORE_SCOPES",
    "ApiConfig",
    "ApiKey",
    "ApiKeyConfig",
    "Bytes",
    "Config",
    "DatabaseConfig",
    "IngestConfig",
    "LongSeconds",
    "QueueConfig",
    "RetentionConfig",
    "RulesConfig",
    "Seconds",
    "Section",
    "ServerConfig",
    "Settings",
    "TemplatesConfig",
    "load_settings",
    "parse_duration",
    "parse_size",
]

ENV_PREFIX = "OWNLY_"
CLIENT_KEY_ENV = "OWNLY_API_KEY"  # the key `ownly webhooks ...` sends; not an [api] override
CORE_SCOPES: tuple[str, ...] = ("admin", "events:read", "events:write", "rules:read", "jobs:read")
"""The scopes of the core API; each capability adds its own (``webhooks:read``, ...)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Read ``10``, ``2.5``, ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"5d"`` as seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected a duration such as 30s, 500ms, 5m, 1h or 5d")
        return float(match[1]) * _UNIT_SECONDS[match[2]]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=86_400)]
LongSeconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=366 * 86_400)]

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB)?\s*$")
_UNIT_BYTES = {"B": 1, "KiB": 1024, "MiB": 1024 * 1024, None: 1}


def parse_size(value: object) -> object:
    """Read ``262144``, ``"256KiB"`` or ``"1MiB"`` as bytes."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError("expected a size such as 256KiB, 1MiB or a number of bytes")
        return int(match[1]) * _UNIT_BYTES[match[2]]
    return value


Bytes = Annotated[int, BeforeValidator(parse_size), Field(gt=0, le=64 * 1024 * 1024)]


class Section(BaseModel):
    """A table of `ownly.toml`: unknown keys refused, values frozen.

    A table of named tables (``[records.investor]``, ``[records.deal]``) takes
    its names as extra keys (``extra="allow"``, ``__pydantic_extra__`` typed)
    and says in ``entries`` what model each is, so that an error in one names
    it as a table of its own (``[records.deal] timeout``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    entries: ClassVar[type[BaseModel] | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_another_type(cls, value: object, info: ValidationInfo) -> object:
        # TOML's true and false would pass as 1 and 0 for a number or a duration.
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation is not bool:
            raise ValueError("must not be true or false")
        return value


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    mode: Literal["development", "production"] = "development"
    state_dir: Path = Path("var")
    shutdown_grace: Seconds = 10.0
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class DatabaseConfig(Section):
    url: str = Field(default="sqlite:///var/ownly.db", repr=False)  # may hold a password
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout: Seconds = 5.0


class RulesConfig(Section):
    paths: list[Path] = Field(default_factory=lambda: [Path("rules")], min_length=1)


class TemplatesConfig(Section):
    path: Path = Path("templates")


class IngestConfig(Section):
    max_body: Bytes = 256 * 1024
    max_batch: int = Field(default=500, ge=1, le=10_000)
    accept_unknown_types: bool = False


class QueueConfig(Section):
    concurrency: int = Field(default=64, ge=1, le=10_000)
    batch: int = Field(default=64, ge=1, le=10_000)
    lease: Seconds = 60.0
    poll_interval: Seconds = 1.0
    # Ingest comes first: with this many ingest requests in flight (0: never),
    # workers run at most ``concurrency_under_load`` jobs at once, until the
    # jobs they lease are ``max_delay_under_load`` late.
    ingest_load: int = Field(default=16, ge=0, le=100_000)
    concurrency_under_load: int = Field(default=4, ge=1, le=10_000)
    max_delay_under_load: Seconds = 30.0


class RetentionConfig(Section):
    jobs: LongSeconds = 30 * 86_400.0  # a finished job and its attempts, after it finished
    events: LongSeconds = 30 * 86_400.0  # an event no job refers to, after it was received
    interval: Seconds = Field(default=3_600.0, ge=1.0)
    batch: int = Field(default=1_000, ge=1, le=100_000)


def _known_scope(value: str, info: ValidationInfo) -> str:
    """A scope of the core or of a capability of this engine (the loader's context)."""
    known = (info.context or {}).get("scopes", CORE_SCOPES)
    if value not in known:
        listed = ", ".join(f"'{name}'" for name in known)
        raise PydanticCustomError("scope", f"Input should be {listed}")
    return value


Scope = Annotated[str, AfterValidator(_known_scope)]


class ApiKeyConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    scopes: list[Scope] = Field(min_length=1)
    key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class ApiConfig(Section):
    keys: list[ApiKeyConfig] = Field(default_factory=list)


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


@functools.cache
def _config_model(sections: tuple[tuple[str, type[BaseModel]], ...]) -> type[Config]:
    """``Config`` with a table for each capability's section."""
    if not sections:
        return Config
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) for name, model in sections
    }
    return create_model("Config", __base__=Config, **fields)


@dataclass(frozen=True)
class ApiKey:
    """An API key resolved from its environment variable."""

    name: str
    scopes: frozenset[str]
    secret: SecretStr

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class Settings:
    """The validated configuration, with paths resolved and secrets read."""

    config: Config
    source: Path | None
    base_dir: Path
    api_keys: tuple[ApiKey, ...]
    scopes: tuple[str, ...] = CORE_SCOPES  # every scope a key may have in this engine

    def section(self, name: str) -> Any:
        """A capability's validated ``[name]`` table (its model's defaults when absent)."""
        return getattr(self.config, name)

    @property
    def production(self) -> bool:
        return self.config.server.mode == "production"

    def resolve(self, path: Path) -> Path:
        """A path from the configuration, relative to the file that named it."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.server.state_dir)

    @property
    def rule_paths(self) -> list[Path]:
        return [self.resolve(path) for path in self.config.rules.paths]

    @property
    def templates_dir(self) -> Path:
        return self.resolve(self.config.templates.path)

    @property
    def database_url(self) -> URL:
        """The URL with SQLite's async driver and an absolute file path."""
        return _database_url(self.config.database.url, self.base_dir)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as data, with every secret hidden."""
        data = self.config.model_dump(mode="json")
        data["database"]["url"] = self.database_url.render_as_string(hide_password=True)
        for key in data["api"]["keys"]:
            key["key"] = "<redacted>"
        return data


def load_settings(
    path: Path | None,
    environ: Mapping[str, str],
    *,
    sections: Mapping[str, type[BaseModel]] | None = None,
    scopes: Sequence[str] = (),
) -> Settings:
    """Read ``path`` (or only defaults when None), apply ``OWNLY_*`` overrides, validate.

    ``sections`` are the capabilities' tables and ``scopes`` their scopes, beside
    the core's: the composition root (``engine.app``) passes them.
    """
    model = _config_model(tuple((sections or {}).items()))
    known = (*CORE_SCOPES, *(scope for scope in scopes if scope not in CORE_SCOPES))
    text = ""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
    label = str(path) if path is not None else "defaults"
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from exc

    origins = _Origins(label, text)
    _apply_environment(model, raw, environ, origins)
    try:
        config = model.model_validate(raw, context={"scopes": known})
    except ValidationError as exc:
        raise ConfigError(_describe(model, exc, origins)) from None

    base_dir = path.parent.resolve() if path is not None else Path.cwd()
    _database_url(config.database.url, base_dir, origin=origins.where(("database", "url")))
    api_keys = tuple(
        _resolve_key(config, index, environ, origins) for index in range(len(config.api.keys))
    )
    return Settings(config=config, source=path, base_dir=base_dir, api_keys=api_keys, scopes=known)


def _resolve_key(
    config: Config, index: int, environ: Mapping[str, str], origins: _Origins
) -> ApiKey:
    key = config.api.keys[index]
    value = environ.get(key.key_env, "")
    if not value:
        where = origins.where(("api", "keys", index, "key_env"))
        raise ConfigError(
            f"{where}: [api.keys] {key.name}: environment variable {key.key_env} is not set"
        )
    return ApiKey(name=key.name, scopes=frozenset(key.scopes), secret=SecretStr(value))


def _database_url(text: str, base_dir: Path, origin: str = "") -> URL:
    # SQLAlchemy is imported here, not above: `ownly check` reads no database.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        # The value is not repeated: a malformed URL may still hold a password.
        raise ConfigError(f"{origin}: [database] url: not a database URL") from None
    if url.get_backend_name() != "sqlite":
        return url
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        database = str(base_dir / database) if not Path(database).is_absolute() else database
    return url.set(drivername="sqlite+aiosqlite", database=database)


class _Origins:
    """Where each value came from: a line of the file, or an environment variable."""

    def __init__(self, label: str, text: str) -> None:
        self._label = label
        self._lines = _key_lines(text)
        self._env: dict[tuple[Any, ...], str] = {}

    def from_env(self, loc: tuple[Any, ...], variable: str) -> None:
        self._env[loc] = variable

    def line(self, loc: tuple[Any, ...]) -> int:
        """The line that holds ``loc`` or its closest enclosing table; 0 when unknown."""
        for length in range(len(loc), 0, -1):
            line = self._lines.get(loc[:length])
            if line is not None:
                return line
        return 0

    def where(self, loc: tuple[Any, ...]) -> str:
        if loc in self._env:
            return self._env[loc]
        line = self.line(loc)
        return f"{self._label}:{line}" if line else self._label


def _key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path (``("server", "port")``, ``("api", "keys", 0, "name")``) to its line."""
    lines: dict[tuple[Any, ...], int] = {}
    table: tuple[Any, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if match := re.match(r"\s*\[\[\s*([\w.-]+)\s*\]\]", line):
            name = tuple(match[1].split("."))
            counts[name] = counts.get(name, -1) + 1
            table = (*name, counts[name])
            lines.setdefault(table, number)
        elif match := re.match(r"\s*\[\s*([\w.-]+)\s*\]", line):
            table = tuple(match[1].split("."))
            lines.setdefault(table, number)
        elif match := re.match(r"\s*([\w-]+)\s*=", line):
            lines.setdefault((*table, match[1]), number)
    return lines


def _apply_environment(
    config: type[Config], raw: dict[str, Any], environ: Mapping[str, str], origins: _Origins
) -> None:
    """Fold ``OWNLY_<SECTION>_<KEY>`` variables into the raw configuration."""
    secrets = _secret_variables(config, raw) | {CLIENT_KEY_ENV}
    sections = config.model_fields
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in secrets:
            continue
        rest = variable[len(ENV_PREFIX) :].lower()
        section = next((name for name in sections if rest.startswith(name + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1 :]
        model = sections[section].annotation
        assert isinstance(model, type) and issubclass(model, Section)
        loc = (section, key)
        origins.from_env(loc, variable)
        if key not in model.model_fields:
            hint = _did_you_mean(key, model.model_fields)
            raise ConfigError(f"{variable}: [{section}] {key}: unknown key{hint}")
        value: Any = environ[variable]
        if _is_list(model, key):
            value = [item.strip() for item in value.split(",") if item.strip()]
        elif _is_nested(model, key):
            raise ConfigError(f"{variable}: [{section}] {key}: can only be set in the file")
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{origins.where((section,))}: [{section}] must be a table")
        target[key] = value


def _secret_variables(config: type[Config], raw: dict[str, Any]) -> set[str]:
    """The variables a ``*_env`` key names (an API key's ``key_env``, ``[email]
    tracking_key_env``, a provider's ``api_key_env``), in the file or by default:
    each holds a secret, never an override, whatever its name."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(item, str):
                    names.add(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(raw)
    for section in config.model_fields.values():
        model = section.annotation
        if isinstance(model, type) and issubclass(model, Section):
            for key, field in model.model_fields.items():
                if key.endswith("_env") and isinstance(field.default, str):
                    names.add(field.default)
    return names


def _is_list(model: type[Section], key: str) -> bool:
    annotation = model.model_fields[key].annotation
    return getattr(annotation, "__origin__", None) is list and not _is_nested(model, key)


def _is_nested(model: type[Section], key: str) -> bool:
    return _nested_model(model.model_fields[key].annotation) is not None


def _describe(config: type[Config], exc: ValidationError, origins: _Origins) -> str:
    """One line per problem; the first names the file and line."""
    problems: list[tuple[int, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        dotted = _dotted(config, loc)
        where = origins.where(loc)
        if error["type"] == "extra_forbidden":
            hint = _did_you_mean(str(loc[-1]), _fields_at(config, loc[:-1]))
            problem = f"{where}: {dotted}: unknown key{hint}"
        elif error["type"] == "missing":
            problem = f"{where}: {dotted}: required key is missing"
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            problem = f"{where}: {dotted}: {error['msg']}{shown}"
        problems.append((origins.line(loc), problem))
    return "\n".join(problem for _, problem in sorted(problems, key=lambda item: item[0]))


def _dotted(config: type[Config], loc: tuple[Any, ...]) -> str:
    """``("api", "keys", 1, "scopes", 0)`` -> ``[api.keys][1] scopes.0``."""
    table: list[str] = []
    index = ""
    model: Any = config
    rest = list(loc)
    while rest and model is not None and isinstance(rest[0], str):
        if rest[0] in model.model_fields:
            nested = _nested_model(model.model_fields[rest[0]].annotation)
        else:
            nested = _entries(model)
        if nested is None:
            break
        table.append(rest.pop(0))
        if rest and isinstance(rest[0], int):
            index += f"[{rest.pop(0)}]"
        model = nested
    key = ".".join(str(part) for part in rest)
    if not table:
        return f"[{key}]"
    return f"[{'.'.join(table)}]{index}" + (f" {key}" if key else "")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields_at(config: type[Config], loc: tuple[Any, ...]) -> list[str]:
    model: Any = config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field is not None else _entries(model)
        if model is None:
            return []
    return list(model.model_fields)


def _entries(model: Any) -> type[BaseModel] | None:
    """The model of each named table of a table of them (``Section.entries``), or None."""
    entries = getattr(model, "entries", None)
    return entries if isinstance(entries, type) and issubclass(entries, BaseModel) else None


def _did_you_mean(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
