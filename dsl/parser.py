"""Rule files to syntax trees.

The fast path (`dsl.fastparse`) drives Lark's tables from its own loop and
builds `dsl.ast` nodes as it reduces; text it cannot parse goes through Lark
itself (parse tree, then `TreeBuilder`), whose errors become diagnostics.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Hashable
from pathlib import Path as FsPath
from typing import Any

from lark.exceptions import UnexpectedInput

from dsl import ast
from dsl.builder import MAX_NESTING, LiteralError, NestingError, token_span
from dsl.diagnostics import Diagnostic
from dsl.errors import RuleSyntaxError
from dsl.fastparse import Fallback, parse_fast
from dsl.grammar import DEFINITION, TreeBuilder, lark_parser, syntax_diagnostic

__all__ = [
    "FileKey",
    "ParseCache",
    "file_key",
    "parse",
    "parse_expression",
    "parse_file",
    "read_source",
    "scan_comments",
]

_LEXEME = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
MAX_SOURCE_BYTES = 2_000_000


def parse(text: str, file: str = "<input>") -> ast.Module:
    """Parse one rule file.

    Raises:
        RuleSyntaxError: the text does not parse; its `diagnostic` says where and why.
    """
    if len(text) > MAX_SOURCE_BYTES:
        span = ast.Span(file, 1, 1, 1, 2)
        raise RuleSyntaxError(Diagnostic("E004", "file is larger than 2 MB", span))
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _run(source, file, "start")
    except RuleSyntaxError as exc:
        raise RuleSyntaxError(exc.diagnostic, _later_errors(source, file, exc.diagnostic)) from None
    definitions = tuple(tree)
    return ast.Module(file, definitions, scan_comments(text))


# A rule file's identity in a `ParseCache`: its name and the SHA-256 of its text.
FileKey = tuple[str, str]


def file_key(text: str, file: str) -> FileKey:
    """The key of a rule file's name and text in a `ParseCache`."""
    return file, hashlib.sha256(text.encode("utf-8")).hexdigest()


class ParseCache:
    """Parsed files by name and content, so that recompiling re-parses only what changed.

    It also keeps each file's webhooks as they were lowered, with the context
    they were lowered in (`dsl.stages`): a recompilation whose catalog and
    consts are unchanged lowers again only the webhooks of changed files.
    The engine keeps one across reloads; syntax trees and lowered webhooks
    are not changed once made, so sharing them between compilations is safe.
    It keeps the latest text of each file name only, so it holds no more
    than the rule set does, however often files are edited.
    """

    def __init__(self, max_files: int = 20_000) -> None:
        self.max_files = max_files
        self._modules: dict[FileKey, ast.Module] = {}
        self._lowered: dict[FileKey, tuple[Hashable, Any]] = {}
        self._latest: dict[str, FileKey] = {}  # by file name

    def parse(self, text: str, file: str) -> ast.Module:
        """Parse `text`, or return the tree parsed from the same name and text before."""
        module = self.get(text, file)
        if module is None:
            module = parse(text, file)
            self.put(text, file, module)
        return module

    def get(self, text: str, file: str) -> ast.Module | None:
        """The tree parsed from this name and text before, if it is kept."""
        return self._modules.get(file_key(text, file))

    def put(self, text: str, file: str, module: ast.Module) -> None:
        """Keep the tree parsed from this name and text."""
        self.keep(file_key(text, file), module)

    def tree(self, key: FileKey) -> ast.Module | None:
        """The tree of the file with this key, if it is kept."""
        return self._modules.get(key)

    def keep(self, key: FileKey, module: ast.Module) -> None:
        """Keep the tree of the file with this key, instead of its name's earlier text."""
        earlier = self._latest.get(key[0])
        if earlier is not None and earlier != key:
            self._modules.pop(earlier, None)
            self._lowered.pop(earlier, None)
        elif earlier is None and len(self._modules) >= self.max_files:
            self._modules.clear()
            self._lowered.clear()
            self._latest.clear()
        self._latest[key[0]] = key
        self._modules[key] = module

    def lowered(self, key: FileKey, context: Hashable) -> Any | None:
        """What lowering the file with this key made in `context`, if it is kept."""
        kept = self._lowered.get(key)
        return kept[1] if kept is not None and kept[0] == context else None

    def keep_lowered(self, key: FileKey, context: Hashable, lowered: Any) -> None:
        """Keep what lowering the file with this key made in `context` (one context a file)."""
        if key in self._modules:
            self._lowered[key] = (context, lowered)


def parse_file(
    path: FsPath, display: str | None = None, cache: ParseCache | None = None
) -> tuple[ast.Module, str]:
    """Read and parse a rule file; returns the module and its text."""
    name = display or str(path)
    text = read_source(path, name)
    module = cache.parse(text, name) if cache is not None else parse(text, name)
    return module, text


def read_source(path: FsPath, name: str) -> str:
    """The text of a rule file (a BOM is dropped).

    Raises:
        RuleSyntaxError: the file cannot be read or is not UTF-8 (E004, at `name`).
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        span = ast.Span(name, 1, 1, 1, 2)
        raise RuleSyntaxError(Diagnostic("E004", f"cannot read file: {exc}", span)) from exc


def parse_expression(text: str, file: str = "<expression>") -> ast.Expr:
    """Parse a single expression (as stored in the compiled IR)."""
    result: ast.Expr = _run(text + "\n", file, "expression")
    return result


def scan_comments(text: str) -> tuple[ast.Comment, ...]:
    """All `#` comments of a file with their positions (strings are skipped)."""
    if "#" not in text:
        return ()
    comments = []
    line_starts = _line_starts(text)
    line = 0
    for match in _LEXEME.finditer(text):
        if not match.group().startswith("#"):
            continue
        while line + 1 < len(line_starts) and line_starts[line + 1] <= match.start():
            line += 1
        column = match.start() - line_starts[line] + 1
        comments.append(ast.Comment(line + 1, column, match.group().rstrip()))
    return tuple(comments)


MAX_SYNTAX_ERRORS = 20  # in one file


def _later_errors(source: str, file: str, first: Diagnostic) -> tuple[Diagnostic, ...]:
    """The syntax errors after `first`, one per broken definition further on.

    Parsing resumes at the first line after each error that starts a definition
    (the text before it blanked out, so that lines and columns stay true), never
    in the middle of one: a definition cut short is one error, not errors all
    through the rest of the file. An error at the start of a definition (the
    block before it not closed) resumes there.
    """
    found: list[Diagnostic] = []
    starts = _line_starts(source)  # the source ends with a newline: the last is its end
    line, here = first.span.line, _at_definition(source, starts, first)
    # The text parsed again, all told: a bound on the time a large file can take.
    budget = max(4 * len(source), 256 * 1024)
    while len(found) < MAX_SYNTAX_ERRORS - 1:
        if line >= len(starts) - 1 and not here:  # the error is on the last line
            break
        resume = DEFINITION.search(source, starts[line - 1] if here else starts[line])
        if resume is None:
            break
        budget -= len(source) - resume.start()
        if budget < 0:
            break
        skipped = bisect.bisect_right(starts, resume.start()) - 1
        try:
            _run("\n" * skipped + source[resume.start() :], file, "start")
        except RuleSyntaxError as exc:
            error = exc.diagnostic
            found.append(error)
            line = max(error.span.line, skipped + 1)
            here = line > skipped + 1 and _at_definition(source, starts, error)
            continue
        break
    return tuple(found)


def _at_definition(source: str, starts: list[int], error: Diagnostic) -> bool:
    """Whether `error` is at the start of a definition."""
    line = error.span.line
    return error.span.column == 1 and bool(DEFINITION.match(source, starts[line - 1]))


def _line_starts(text: str) -> list[int]:
    """Where each line of `text` starts (the first at 0)."""
    return [0, *(match.end() for match in re.finditer("\n", text))]


def _run(source: str, file: str, start: str) -> Any:
    try:
        return parse_fast(source, file, start)
    except Fallback:
        pass
    except NestingError as exc:
        raise _too_deep(exc) from None
    return _run_lark(source, file, start)


def _run_lark(source: str, file: str, start: str) -> Any:
    """Parse with Lark: slower, and the source of every syntax diagnostic."""
    try:
        tree = lark_parser().parse(source, start=start)
        return TreeBuilder(file).transform(tree)
    except UnexpectedInput as exc:
        raise RuleSyntaxError(syntax_diagnostic(exc, file, source)) from None
    except LiteralError as exc:
        span = token_span(file, exc.token)
        raise RuleSyntaxError(Diagnostic("E001", str(exc), span)) from None
    except NestingError as exc:
        raise _too_deep(exc) from None


def _too_deep(error: NestingError) -> RuleSyntaxError:
    hint = f"the limit is {MAX_NESTING} levels; a const can name part of an expression"
    return RuleSyntaxError(Diagnostic("E001", str(error), error.span, hint))
