"""Email template files: Jinja2 (sandboxed) parsing, variable checks and rendering."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "LAYOUT_VARIABLES",
    "ReferencedFile",
    "TemplateFileProblem",
    "TemplateReference",
    "TemplateSource",
    "load_template_file",
    "referenced_files",
    "safe_relative",
    "string_variables",
]

# A layout sees the template's variables plus these two.
LAYOUT_VARIABLES = ("content", "subject")


@dataclass(frozen=True, slots=True)
class TemplateFileProblem:
    """Why a template file cannot be used: code, message and line in the file."""

    code: str
    message: str
    line: int = 1


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """A template file that parsed: its text, digest, free variables and the files it names.

    `assigned`: the names it binds (`set`, `for`, `with`, macro parameters),
    which a file it includes or extends may use.
    """

    path: str
    text: str
    sha256: str
    variables: frozenset[str]
    references: tuple[TemplateReference, ...] = ()
    assigned: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TemplateReference:
    """A file named by `{% include %}`, `{% extends %}` or `{% import %}`.

    An optional one (`ignore missing`, or one of a list of which the first
    found is used) is no error when absent. `in_context`: it is rendered with
    the variables of the file naming it (an include or extends; an import only
    `with context`).
    """

    name: str
    optional: bool = False
    in_context: bool = True


@dataclass(frozen=True, slots=True)
class ReferencedFile:
    """A file a template pulls in, the file naming it, and what loading it gave.

    `in_context`: it is rendered with the template's variables, and with
    `visible`, the names the files pulling it in bind around it.
    """

    name: str
    parent: str
    loaded: TemplateSource | TemplateFileProblem
    in_context: bool = True
    visible: frozenset[str] = frozenset()


@functools.cache
def _environment() -> SandboxedEnvironment:
    # For parsing only; rendering builds its own environment with a loader.
    return SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)


def safe_relative(name: str) -> bool:
    """Whether `name` is a relative path that stays inside its directory."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def string_variables(text: str) -> frozenset[str] | TemplateFileProblem:
    """The free variables of a Jinja2 string (a subject line), or why it does not parse."""
    parsed = _parse(text)
    if isinstance(parsed, TemplateFileProblem):
        return parsed
    return frozenset(meta.find_undeclared_variables(parsed))


def _parse(text: str) -> nodes.Template | TemplateFileProblem:
    env = _environment()
    try:
        parsed = env.parse(text)
        # Compiling finds what parsing lets through: unknown filters and tests.
        env.compile(parsed)
    except jinja2.TemplateSyntaxError as exc:
        return TemplateFileProblem("E033", f"not valid Jinja2: {exc.message}", exc.lineno)
    return parsed


_REFERENCING = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def _references(parsed: nodes.Template) -> tuple[TemplateReference, ...]:
    """The files a template pulls in by a literal name.

    A name computed at render time cannot be checked here and is left out.
    """
    found: dict[str, tuple[bool, bool]] = {}  # name -> (optional, in context)
    for node in parsed.find_all(_REFERENCING):
        assert isinstance(node, _REFERENCING)
        names: list[object] = []
        if isinstance(node.template, nodes.Const):
            names = [node.template.value]
        elif isinstance(node.template, (nodes.Tuple, nodes.List)):
            names = [i.value for i in node.template.items if isinstance(i, nodes.Const)]
        optional = len(names) > 1 or bool(getattr(node, "ignore_missing", False))
        in_context = isinstance(node, nodes.Extends) or bool(node.with_context)
        for name in names:
            if isinstance(name, str):
                was_optional, was_in_context = found.get(name, (True, False))
                found[name] = (was_optional and optional, was_in_context or in_context)
    return tuple(TemplateReference(name, *flags) for name, flags in found.items())


def referenced_files(directory: Path, source: TemplateSource) -> list[ReferencedFile]:
    """Every file `source` pulls in, directly or through another, each once.

    Names resolve under `directory`, as the engine's renderer resolves them.
    An optional file that is absent is left out.
    """
    # A file reached both without and with the template's variables is checked with them.
    seen = {(source.path, True)}
    found: list[ReferencedFile] = []
    pending = [(source.path, ref, ref.in_context, source.assigned) for ref in source.references]
    while pending:
        parent, ref, in_context, visible = pending.pop(0)
        if (ref.name, True) in seen or (ref.name, in_context) in seen:
            continue
        seen.add((ref.name, in_context))
        loaded = load_template_file(directory, ref.name)
        if ref.optional and isinstance(loaded, TemplateFileProblem) and loaded.code == "E032":
            continue
        found.append(ReferencedFile(ref.name, parent, loaded, in_context, visible))
        if isinstance(loaded, TemplateSource):
            around = visible | loaded.assigned  # what the files it pulls in see bound
            pending += [
                (ref.name, r, in_context and r.in_context, around) for r in loaded.references
            ]
    return found


def load_template_file(directory: Path, name: str) -> TemplateSource | TemplateFileProblem:
    """Read and parse one template file under `directory`."""
    if not safe_relative(name):
        return TemplateFileProblem("E022", f"'{name}' must be a relative path inside templates/")
    path = directory / name
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except FileNotFoundError:
        return TemplateFileProblem("E032", f"template file '{name}' not found in {directory}")
    except (OSError, UnicodeDecodeError) as exc:
        return TemplateFileProblem("E032", f"cannot read template file '{name}': {exc}")
    parsed = _parse(text)
    if isinstance(parsed, TemplateFileProblem):
        return parsed
    variables = frozenset(meta.find_undeclared_variables(parsed))
    digest = hashlib.sha256(data).hexdigest()
    assigned = frozenset(
        node.name for node in parsed.find_all(nodes.Name) if node.ctx in ("store", "param")
    )
    return TemplateSource(name, text, digest, variables, _references(parsed), assigned)


def load_sample(directory: Path, name: str) -> tuple[dict[str, object], str] | TemplateFileProblem:
    """Read a sample-data JSON object; returns it with its digest."""
    if not safe_relative(name):
        return TemplateFileProblem("E022", f"'{name}' must be a relative path inside templates/")
    try:
        data = (directory / name).read_bytes()
        value = json.loads(data)
    except FileNotFoundError:
        return TemplateFileProblem("E034", f"sample data '{name}' not found in {directory}")
    except (OSError, ValueError) as exc:
        return TemplateFileProblem("E034", f"sample data '{name}' is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return TemplateFileProblem("E034", f"sample data '{name}' must be a JSON object")
    return value, hashlib.sha256(data).hexdigest()
