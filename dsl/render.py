"""Rendering of a rule set's email templates: subject, preheader, HTML and text.

A `Renderer` holds everything one rule-set version needs, read and compiled
once: the template files it was compiled with (checked against their
digests), one sandboxed Jinja2 environment over them, every template
compiled, and the sample data. `Renderers` keeps the renderers of the last
few versions.

The errors::

    RenderError             a template cannot be rendered (or compiled)
    ├── UnknownTemplate     no template of that name (also a KeyError)
    └── StaleTemplates      the files differ from those the version was compiled with
"""

from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import css_inline
import jinja2
import markupsafe
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dsl import RuleSet, ir
from dsl.plaintext import plain_text
from dsl.templates import TemplateFileProblem, load_sample, load_template_file

__all__ = [
    "RenderError",
    "Rendered",
    "Renderer",
    "Renderers",
    "StaleTemplates",
    "UnknownTemplate",
]

# How StrictUndefined names a variable the data does not give (jinja2 3.x).
_UNDEFINED_VARIABLE = re.compile(r"'(\w+)' is undefined")
# The start tag css_inline writes for the body: its attribute values are always double-quoted.
_BODY_START = re.compile(r'<body(?:[^>"]|"[^"]*")*>')
_PREHEADER = '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">{}</div>'


class RenderError(Exception):
    """An email template cannot be rendered.

    Attributes:
        template: the template's name, None for an error about the version's files.
        variable: the undefined variable that stopped the render, if that was the cause.
    """

    def __init__(
        self, message: str, *, template: str | None = None, variable: str | None = None
    ) -> None:
        super().__init__(message)
        self.template = template
        self.variable = variable

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownTemplate(RenderError, KeyError):
    """The rule set has no template of that name."""


class StaleTemplates(RenderError):
    """The template files differ from those the rule-set version was compiled with.

    Attributes:
        paths: the files, relative to the templates directory.
    """

    def __init__(self, message: str, *, paths: tuple[str, ...]) -> None:
        super().__init__(message)
        self.paths = paths


@dataclass(frozen=True, slots=True)
class Rendered:
    """An email rendered from a template.

    `html` has its CSS inlined and the preheader, if any, hidden at the start
    of its body; `text` is the template's text file rendered, or else the
    text of `html`. The subject is as rendered: a line break in it is for the
    message builder to refuse.
    """

    subject: str
    html: str
    text: str
    preheader: str | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    definition: ir.Template
    subject: jinja2.Template
    preview: jinja2.Template | None
    html: jinja2.Template
    text: jinja2.Template | None
    layout: jinja2.Template | None


class _Sources(jinja2.BaseLoader):
    """A version's files, in memory (a DictLoader whose tracebacks name the file)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            return self._sources[template], template, _fixed
        except KeyError:
            raise jinja2.TemplateNotFound(template) from None

    def list_templates(self) -> list[str]:
        return sorted(self._sources)


def _fixed() -> bool:
    return True  # a version's files never change: the loaded template is up to date


class Renderer:
    """Renders the email templates of one rule-set version.

    One renderer may render from several threads at once: its templates and
    inliner are shared read-only, and each render builds its own text.

    Attributes:
        version: the rule set's version.
    """

    def __init__(
        self,
        rules: RuleSet,
        sources: Mapping[str, str],
        samples: Mapping[str, dict[str, Any]],
    ) -> None:
        """Compile every template of `rules` from `sources` (file name -> text).

        `samples` maps a sample file's name to its data. Nothing is read from
        disk: a file a template includes, imports or extends is one of `sources`.

        Raises:
            RenderError: a template or a file it names does not compile.
        """
        self.version = rules.version
        self._samples = dict(samples)
        # Immutable: a template cannot change the data it is given (a dict's
        # update, a list's append), which the caller may render again.
        self._env = ImmutableSandboxedEnvironment(
            loader=_Sources(sources),
            # A subject or preview (from_string) and a .txt file are plain text.
            autoescape=jinja2.select_autoescape(("html", "htm"), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            cache_size=-1,  # the files are fixed: none is ever compiled twice
        )
        self._inliner = css_inline.CSSInliner(
            load_remote_stylesheets=False, keep_link_tags=True, keep_at_rules=True
        )
        self._templates = {t.name: self._compile(t) for t in rules.ir.templates}
        for path in sources:  # included and imported files too: a render never parses
            self._template(path, None)

    @classmethod
    def compile(cls, rules: RuleSet, directory: Path) -> Renderer:
        """Read the files the version uses from `directory` and compile its templates.

        Raises:
            StaleTemplates: a file is missing or differs from the version's digest of it.
            RenderError: a template does not compile.
        """
        sample_names = {t.sample for t in rules.ir.templates if t.sample}
        sources: dict[str, str] = {}
        samples: dict[str, dict[str, Any]] = {}
        stale: dict[str, str] = {}
        for file in rules.ir.files:
            if file.path in sample_names:
                loaded_sample = load_sample(directory, file.path)
                if isinstance(loaded_sample, TemplateFileProblem):
                    stale[file.path] = loaded_sample.message
                elif loaded_sample[1] != file.sha256:
                    stale[file.path] = f"'{file.path}' has changed"
                else:
                    samples[file.path] = loaded_sample[0]
                continue
            loaded = load_template_file(directory, file.path)
            if isinstance(loaded, TemplateFileProblem):
                stale[file.path] = loaded.message
            elif loaded.sha256 != file.sha256:
                stale[file.path] = f"'{file.path}' has changed"
            else:
                sources[file.path] = loaded.text
        if stale:
            raise StaleTemplates(
                f"template files changed since rule set version {rules.version[:12]} was"
                f" applied: {'; '.join(stale.values())}; reload the rules to use them",
                paths=tuple(stale),
            )
        return cls(rules, sources, samples)

    def render(self, name: str, data: Mapping[str, Any]) -> Rendered:
        """Render template `name` with `data` as its variables.

        Raises:
            UnknownTemplate: the rule set has no such template.
            RenderError: a variable is undefined, the sandbox refused an
                access, or the template failed otherwise.
        """
        compiled = self._get(name)
        variables = dict(data)
        part = "subject"
        try:
            subject = compiled.subject.render(variables)
            part = "preview"
            preheader = compiled.preview.render(variables) if compiled.preview else None
            part = "html"
            html = compiled.html.render(variables)
            if compiled.layout is not None:
                part = "layout"
                # The body was rendered with autoescape: it is embedded as HTML, not escaped again.
                content = markupsafe.Markup(html)  # noqa: S704
                html = compiled.layout.render({**variables, "content": content, "subject": subject})
            part = "text"
            text = compiled.text.render(variables) if compiled.text else None
        except Exception as exc:
            raise _render_error(name, part, exc) from exc
        try:
            html = self._inliner.inline(html)
        except css_inline.InlineError as exc:
            raise RenderError(
                f"template {name}: cannot inline its CSS: {exc}", template=name
            ) from exc
        if preheader:
            html = _with_preheader(html, preheader)
        return Rendered(subject, html, plain_text(html) if text is None else text, preheader)

    def variables(self, name: str, data: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """The declared variables `data` does not give, and the keys it gives undeclared.

        Raises:
            UnknownTemplate: the rule set has no such template.
        """
        declared = self._get(name).definition.variables
        missing = [v for v in declared if v not in data]
        extra = [k for k in data if k not in declared]
        return missing, extra

    def sample(self, name: str) -> dict[str, Any] | None:
        """A copy of the template's sample data, None when it declares none.

        Raises:
            UnknownTemplate: the rule set has no such template.
        """
        path = self._get(name).definition.sample
        return copy.deepcopy(self._samples[path]) if path else None

    def _get(self, name: str) -> _Compiled:
        try:
            return self._templates[name]
        except KeyError:
            message = f"rule set version {self.version[:12]} has no template {name!r}"
            raise UnknownTemplate(message, template=name) from None

    def _compile(self, definition: ir.Template) -> _Compiled:
        name = definition.name

        def string(text: str, part: str) -> jinja2.Template:
            try:
                return self._env.from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                message = f"template {name}: its {part} is not valid Jinja2: {exc.message}"
                raise RenderError(message, template=name) from exc

        preview, text, layout = definition.preview, definition.text, definition.layout
        return _Compiled(
            definition=definition,
            subject=string(definition.subject, "subject"),
            preview=string(preview, "preview") if preview is not None else None,
            html=self._template(definition.html, name),
            text=self._template(text, name) if text else None,
            layout=self._template(layout, name) if layout else None,
        )

    def _template(self, path: str, name: str | None) -> jinja2.Template:
        """File `path` compiled; `name`: the template it is for, None for any file."""
        what = f"template {name}" if name else f"template file {path}"
        try:
            return self._env.get_template(path)
        except jinja2.TemplateNotFound as exc:
            message = f"{what}: '{exc.name}' is not a file of this rule-set version"
            raise RenderError(message, template=name) from exc
        except jinja2.TemplateSyntaxError as exc:
            message = f"{what}: {exc.name}:{exc.lineno}: not valid Jinja2: {exc.message}"
            raise RenderError(message, template=name) from exc


class Renderers:
    """The renderers of the last few rule-set versions, each compiled on first use.

    Safe to use from the event loop and worker threads at once.
    """

    def __init__(self, directory: Path, size: int = 4) -> None:
        self._directory = directory
        self._size = size
        self._renderers: OrderedDict[str, Renderer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rules: RuleSet) -> Renderer:
        """The renderer of `rules`' version, compiled from the templates directory if new.

        Raises:
            StaleTemplates: the files have changed since the version was compiled.
            RenderError: a template does not compile.
        """
        with self._lock:
            renderer = self._renderers.get(rules.version)
            if renderer is None:
                renderer = Renderer.compile(rules, self._directory)
                self._renderers[rules.version] = renderer
                while len(self._renderers) > self._size:
                    self._renderers.popitem(last=False)
            else:
                self._renderers.move_to_end(rules.version)
            return renderer


def _render_error(name: str, part: str, exc: Exception) -> RenderError:
    where = _location(exc.__traceback__) or f"in its {part}"
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED_VARIABLE.fullmatch(exc.message or "")
        message = f"template {name}: {exc.message} ({where})"
        return RenderError(message, template=name, variable=match[1] if match else None)
    if isinstance(exc, SecurityError):
        return RenderError(
            f"template {name}: refused by the sandbox: {exc} ({where})", template=name
        )
    detail = str(exc) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}"
    return RenderError(f"template {name}: {detail or type(exc).__name__} ({where})", template=name)


def _location(tb: TracebackType | None) -> str | None:
    """Where in a template file an error was raised: `file:line` of the innermost frame."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if "__jinja_exception__" in tb.tb_frame.f_globals and not code.co_filename.startswith("<"):
            found = f"{code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _with_preheader(html: str, preheader: str) -> str:
    hidden = _PREHEADER.format(markupsafe.escape(preheader))
    start = _BODY_START.search(html)
    if start is None:
        return hidden + html
    return html[: start.end()] + hidden + html[start.end() :]
