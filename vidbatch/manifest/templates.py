"""Jinja for manifests: sandboxed, strict, loading only from the manifest's folder, compiled once.

- ``ImmutableSandboxedEnvironment``: templates cannot reach Python internals (``__class__``,
  ``__globals__``...) nor mutate the lists and dicts they are given.
- ``StrictUndefined``: an undefined variable is an error naming it, never an empty string.
- A loader rooted at the manifest's folder: ``{% include %}`` of ``../x`` or ``/etc/x`` fails,
  and so does a symlink inside the folder that points outside it. Every file it reads is
  recorded, so watch mode can re-run when an included template changes.
- Autoescape off (prompts are not HTML); ``trim_blocks``/``lstrip_blocks`` so ``{% if %}`` lines
  leave no stray newlines in a prompt.
- The environment is reachable only as ``{{ env.NAME }}`` (an unset variable is an error naming
  it) or ``{{ env.get("NAME", "fallback") }}``. ``env`` cannot be listed or printed, so a template
  never leaks the environment implicitly.

Each distinct template string is compiled once and cached by its source, so 10,000 jobs expanded
from one ``[[jobs]]`` table compile its name, prompt and output templates once each. A string with
no ``{{``, ``{%`` or ``{#`` is not a template and never reaches Jinja. A template that only
substitutes plain variables (``shot-{{ id }}``, by far the most common kind) compiles to a list of
literal and variable parts, rendered without Jinja's per-render context set-up; its output is the
same as Jinja's (``str()`` of each value, one trailing newline dropped, an undefined variable an
error). Anything else (filters, attributes, tags, comments, whitespace control) goes to Jinja.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Names the loader adds to every job's variables; a [vars] key or matrix key cannot use them.
RESERVED_NAMES = ("env", "row")


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


class TemplateProblem(Exception):
    """A template failed to compile or render. ``file``/``line`` point into an included template
    when the problem is there, else they are None (the caller knows the field)."""

    def __init__(self, message: str, *, file: Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line


class MissingEnvVar(Exception):
    """Raised from inside a render: deliberately not a LookupError, so Jinja does not turn it into
    an anonymous Undefined."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class EnvironProxy:
    """``env`` in templates: item and attribute access to single variables, nothing more."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        try:
            return self._environ[name]
        except KeyError:
            raise MissingEnvVar(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._environ.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._environ

    def __repr__(self) -> str:
        return "<environment variables: read one with env.NAME>"

    __str__ = __repr__


class _FolderLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that records what it reads and refuses symlinks leading out of its root.
    (FileSystemLoader itself already refuses ``..`` in template names.)"""

    def __init__(self, root: Path, read: set[Path]):
        super().__init__(str(root), followlinks=False)
        self._real_root = os.path.realpath(root)
        self._read = read

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        real = os.path.realpath(filename)
        if not real.startswith(self._real_root + os.sep):
            raise jinja2.TemplateNotFound(template)
        self._read.add(Path(filename))
        return source, filename, uptodate


_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_JINJA_GLOBALS = frozenset(jinja2.Environment().globals)


class Templates:
    """Compiles and renders the templated strings of the manifests in one folder."""

    def __init__(self, root: Path, environ: Mapping[str, str]):
        self.root = root
        #: Files read through {% include %} / {% import %} / {% extends %}.
        self.files_read: set[Path] = set()
        self.env = ImmutableSandboxedEnvironment(
            loader=_FolderLoader(root, self.files_read),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.environ = EnvironProxy(environ)
        #: Jinja's own globals (range, dict, namespace...): callers put them first in the
        #: variables they pass to :meth:`render`, once, instead of Jinja merging them per render.
        self.globals: dict[str, Any] = dict(self.env.globals)
        self._compiled: dict[str, jinja2.Template | _Substitution] = {}
        #: How many template strings were compiled (cache misses); includes are counted by Jinja.
        self.compilations = 0

    def compile(self, source: str) -> jinja2.Template | _Substitution:
        template = self._compiled.get(source)
        if template is None:
            self.compilations += 1
            template = _Substitution.parse(source)
            if template is None:
                try:
                    template = self.env.from_string(source)
                except jinja2.TemplateSyntaxError as e:
                    raise _syntax_problem(e, self.root) from None
            self._compiled[source] = template
        return template

    def render(self, source: str, variables: dict[str, Any]) -> str:
        """``source`` rendered with ``variables`` (which should start from :attr:`globals`); a plain
        string comes back as it is."""
        if not is_template(source):
            return source
        template = self.compile(source)
        if isinstance(template, _Substitution):
            try:
                return template.render(variables)
            except KeyError as e:
                raise TemplateProblem(_undefined_message(f"'{e.args[0]}' is undefined", variables)) from None
        try:
            # What Template.render does, minus merging the globals into a fresh dict and
            # re-reading them for every call: 3x faster on the 10,000-job benchmark.
            context = self.env.context_class(self.env, variables, template.name, template.blocks)
            return self.env.concat(template.root_render_func(context))
        except MissingEnvVar as e:
            raise TemplateProblem(
                f"environment variable {e.name} is not set; set it, or give a fallback with "
                f"{{{{ env.get('{e.name}', '...') }}}}"
            ) from None
        except jinja2.UndefinedError as e:
            raise TemplateProblem(_undefined_message(str(e), variables)) from None
        except SecurityError as e:
            raise TemplateProblem(
                f"the template sandbox refused it: {e} Templates can read variables and call "
                "filters, nothing else"
            ) from None
        except jinja2.TemplateNotFound as e:
            raise TemplateProblem(
                f"template {e.name!r} not found in the manifest's folder ({self.root}); "
                "templates are only loaded from there, never from outside it"
            ) from None
        except jinja2.TemplateSyntaxError as e:  # in an included file, compiled on first use
            raise _syntax_problem(e, self.root) from None
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as e:
            # The template is the user's code: its failures are manifest problems, located by the
            # caller, not crashes of vidbatch.
            raise TemplateProblem(f"template error: {type(e).__name__}: {e}") from None


_SUBSTITUTION = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}")
_NEWLINES = re.compile(r"\r\n|\r|\n")


class _Substitution:
    """A template of literal text and ``{{ variable }}`` only, rendered without Jinja."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[tuple[bool, str]]):
        self.parts = parts  # (is a variable, literal text or variable name)

    @classmethod
    def parse(cls, source: str) -> _Substitution | None:
        if "{%" in source or "{#" in source:
            return None
        # Jinja normalises newlines and drops one trailing newline (keep_trailing_newline=False).
        text = _NEWLINES.sub("\n", source)
        if text.endswith("\n"):
            text = text[:-1]
        parts: list[tuple[bool, str]] = []
        pos = 0
        for m in _SUBSTITUTION.finditer(text):
            if m.start() > pos:
                parts.append((False, text[pos : m.start()]))
            parts.append((True, m.group(1)))
            pos = m.end()
        if pos < len(text):
            parts.append((False, text[pos:]))
        if any(not is_var and "{{" in value for is_var, value in parts):
            return None  # an expression with more than a variable name
        return cls(parts)

    def render(self, variables: Mapping[str, Any]) -> str:
        """Raises KeyError naming an undefined variable."""
        return "".join(str(variables[value]) if is_var else value for is_var, value in self.parts)


def _syntax_problem(e: jinja2.TemplateSyntaxError, root: Path) -> TemplateProblem:
    if e.filename:
        return TemplateProblem(f"template syntax error: {e.message}", file=Path(e.filename), line=e.lineno)
    where = f" (template line {e.lineno})" if e.source and "\n" in e.source else ""
    return TemplateProblem(f"template syntax error: {e.message}{where}")


def _undefined_message(text: str, variables: Mapping[str, Any]) -> str:
    m = _UNDEFINED.match(text)
    if not m:
        return f"template error: {text}"
    name = m.group(1)
    known = sorted(k for k in variables if k not in RESERVED_NAMES and k not in _JINJA_GLOBALS)
    near = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return (
        f"undefined variable {name!r}; {hint}define it in [vars], pass --var {name}=..., "
        f"or add it to the job's matrix or foreach rows"
        + (f" (variables: {', '.join(known)})" if known and len(known) <= 12 else "")
    )
