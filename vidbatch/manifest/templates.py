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

Templates are the user's code, so their cost is bounded (:class:`Budget`): every intermediate
string, list or number a template builds (``*``, ``**``, ``+``, ``%``, ``~``, filters, method
calls, ``range``, ``lipsum``) is checked *before* it is built against :data:`MAX_CHARS` and
:data:`MAX_INT_BITS` (sizes count through nested lists; the filters and string methods that
multiply their arguments, ``join``, ``replace``, ``indent``, ``wordwrap``, ``format``,
``expandtabs``, ``translate``, are sized from them first; what a block renders into a value, what
a filter yields lazily and every ``{{ value }}`` are bounded as they are joined); every loop iteration and call is a step, at most :data:`MAX_STEPS` per
rendered value and :data:`EXPANSION_MAX_STEPS` per manifest; and a wall-clock deadline
(:data:`MAX_SECONDS` per value, :data:`EXPANSION_MAX_SECONDS` per manifest, in CPU time of the
rendering thread) is checked at each step. This is the design Jinja's sandbox documentation suggests (``intercepted_binops`` and
``call_binop``, ``call``); two things it does not intercept are routed through the budget by
rewriting the parsed template before it is compiled: ``{% for %}`` iterables (each iteration is a
step) and ``~`` concatenation. Filters are wrapped, so constant folding at compile time (which
would run ``'x'|center(2000000000)`` outside any error handling) finds them refusing and leaves
them to run time, where the budget applies. Included files are read only when they are regular
files of at most :data:`TEMPLATE_FILE_MAX_BYTES`. The environment variable that holds the API key
cannot be read from templates at all.

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
import functools
import os
import posixpath
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from .source import read_problem, read_regular

#: Names the loader adds to every job's variables; a [vars] key or matrix key cannot use them.
RESERVED_NAMES = ("env", "row")
#: The environment variable holding the API key: templates cannot read it (``env.NAME``,
#: ``env.get``), so a prompt, a name or an image URL never carries the key anywhere.
SECRET_ENV_NAMES = frozenset({"MINIMAX_API_KEY"})

# --- the budget of a template (see the module docstring) ------------------------------------------
#: Longest string, list or rendered value a template may build (a prompt is at most 2,000).
MAX_CHARS = 100_000
#: Largest integer a template may compute, in bits (``7 ** (10 ** 9)`` would take minutes).
MAX_INT_BITS = 4096
#: Loop iterations and calls one rendered value may take (a step costs about 2 µs).
MAX_STEPS = 100_000
#: CPU seconds one rendered value may take (CPU time of the rendering thread, so a loaded machine
#: or a busy watch does not count against a template).
MAX_SECONDS = 2.0
#: Steps and seconds every template of one manifest may take together: 10,000 jobs of 100 steps
#: each, ten times over; a few seconds of work at most.
EXPANSION_MAX_STEPS = 1_000_000
EXPANSION_MAX_SECONDS = 10.0
#: Largest file ``{% include %}`` / ``{% import %}`` reads.
TEMPLATE_FILE_MAX_BYTES = 1024 * 1024


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


class TemplateProblem(Exception):
    """A template failed to compile or render. ``file``/``line`` point into an included template
    when the problem is there, else they are None (the caller knows the field)."""

    def __init__(
        self, message: str, *, file: Path | None = None, line: int | None = None, undefined: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        #: the variable name, when the problem is an undefined variable
        self.undefined = undefined


class TooCostly(Exception):
    """A template went past its budget. Deliberately not a Jinja or lookup error, so nothing in
    Jinja swallows it."""


class SecretEnvVar(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


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
        if name in SECRET_ENV_NAMES:
            raise SecretEnvVar(name)
        try:
            return self._environ[name]
        except KeyError:
            raise MissingEnvVar(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        if name in SECRET_ENV_NAMES:
            raise SecretEnvVar(name)
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
        # FileSystemLoader's own reading, bounded: only a regular file, of a limited size.
        pieces = split_template_path(template)  # refuses ".."
        filename = posixpath.join(self.searchpath[0], *pieces)
        real = os.path.realpath(filename)
        if not real.startswith(self._real_root + os.sep):
            raise jinja2.TemplateNotFound(template)
        try:
            data = read_regular(filename, TEMPLATE_FILE_MAX_BYTES)
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except OSError as e:
            raise TemplateProblem(f"template {template!r} {read_problem(e, filename)}") from None
        self._read.add(Path(filename))
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TemplateProblem(f"template {template!r} is not UTF-8 text (byte {e.start})") from None
        mtime = os.path.getmtime(filename)
        return source, os.path.normpath(filename), lambda: False if not os.path.exists(filename) else os.path.getmtime(filename) == mtime


class Budget:
    """What one render, and all the renders of one manifest, may still spend (module docstring).

    While a template compiles (``compiling``) a guarded filter refuses to run, which keeps Jinja
    from folding it into a constant outside any budget. Steps are counted only inside
    :meth:`Templates.render` (``active``); the size checks apply everywhere."""

    def __init__(self) -> None:
        self.active = False
        self.compiling = False
        self.steps = 0
        self.deadline = 0.0
        self.total_steps = 0
        self.total_seconds = 0.0
        self.exhausted: str | None = None  # why the manifest's budget is spent, once it is

    def start(self) -> None:
        if self.exhausted:
            raise TooCostly(self.exhausted)
        self.active = True
        self.steps = 0
        self.started = time.thread_time()
        self.deadline = self.started + min(MAX_SECONDS, EXPANSION_MAX_SECONDS - self.total_seconds)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.total_steps += self.steps
            self.total_seconds += time.thread_time() - self.started
            if self.total_steps >= EXPANSION_MAX_STEPS or self.total_seconds >= EXPANSION_MAX_SECONDS:
                self.exhausted = (
                    f"template too costly: the templates of this manifest took more than their budget together "
                    f"({EXPANSION_MAX_STEPS:,} loop iterations and calls, {EXPANSION_MAX_SECONDS:g} s), so the "
                    "jobs after this point were not expanded; simplify the templates"
                )

    def step(self) -> None:
        if not self.active:
            return
        self.steps += 1
        if self.steps > MAX_STEPS or self.total_steps + self.steps > EXPANSION_MAX_STEPS:
            raise TooCostly(f"takes more than {MAX_STEPS:,} steps (loop iterations and calls)")
        if time.thread_time() > self.deadline:
            raise TooCostly(f"takes longer than {MAX_SECONDS:g} s")

    def check_size(self, size: int, what: str = "a value") -> None:
        if size > MAX_CHARS:
            raise TooCostly(f"would build {what} of {size:,} characters or items; at most {MAX_CHARS:,}")

    def check_int(self, bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise TooCostly(f"would compute a number of about {bits:,} bits; at most {MAX_INT_BITS:,}")


def _size(value: Any, limit: int = MAX_CHARS) -> int:
    """Characters or items ``value`` holds, counting through the lists, tuples and dicts it holds
    (so a list of long strings, or of lists, cannot be multiplied into a huge join or output);
    counting stops once past ``limit``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        items: Any = [*value, *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return 0
    total = len(items)
    for x in items:
        if total > limit:
            break
        if isinstance(x, str):
            total += len(x)
        elif isinstance(x, (list, tuple, dict, set, frozenset)):
            total += _size(x, limit - total)
    return total


def _largest(values: Iterable[Any]) -> int:
    """The most characters one of ``values`` can put into a string built from them."""
    return max((_size(v) if isinstance(v, (str, list, tuple, dict)) else len(str(v)) for v in values), default=0)


def _built_size(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of the characters a call of the string method or filter ``name`` builds from
    ``args`` (the string or value first), for the calls whose result can be far larger than their
    arguments; 0 for the others."""
    if not args:
        return 0
    s = args[0]
    arg = args[1] if len(args) > 1 else None
    if name == "join" and isinstance(s, str) and isinstance(arg, Sized):  # str.join
        return len(s) * len(arg) + _size(arg)
    if name == "join" and isinstance(s, Sized):  # the join filter
        sep = kwargs.get("d", arg if arg is not None else "")
        return len(str(sep)) * len(s) + _size(s) + len(s)
    if not isinstance(s, str):
        return 0
    if name == "replace" and len(args) >= 3:
        old, new = str(args[1]), str(args[2])
        return len(s) + (len(s) // max(len(old), 1) + 1) * len(new)
    if name == "expandtabs":
        tab = kwargs.get("tabsize", arg if arg is not None else 8)
        return len(s) + s.count("\t") * tab if isinstance(tab, int) else 0
    if name in ("format", "format_map"):
        return len(s) + (s.count("{") + s.count("%")) * _largest([*args[1:], *kwargs.values()])
    if name == "translate" and isinstance(arg, Mapping):
        return len(s) * max(1, _largest(arg.values()))
    if name == "indent":
        width = kwargs.get("width", arg if arg is not None else 4)
        return len(s) + (s.count("\n") + 1) * (len(width) if isinstance(width, str) else width if isinstance(width, int) else 0)
    if name == "wordwrap":
        wrap = kwargs.get("wrapstring", args[3] if len(args) > 3 else None)
        return len(s) * (1 + len(str(wrap))) if wrap is not None else 0
    return 0


#: A width or precision of seven digits or more in a format string ("%0999999999d", "{:>1e9}").
_WIDE_FORMAT = re.compile(r"\d{7,}")
#: Filters (and lipsum) whose numeric arguments size what they build.
_SIZING_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})
_BUILTIN_METHODS = (types.BuiltinMethodType, types.MethodWrapperType)


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every operation that can build something large or run long charged to a
    :class:`Budget` (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, budget: Budget, **options: Any):
        super().__init__(finalize=self.bounded_output, **options)
        self.budget = budget
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum

    # -- the parsed template is rewritten before it is compiled --------------------------------

    def compile(
        self,
        source: str | nodes.Template,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if isinstance(source, str):
            source = _Charged(self).visit(self.parse(source, name, filename))
        compiling, self.budget.compiling = self.budget.compiling, True
        try:
            return super().compile(source, name, filename, raw, defer_init)  # type: ignore[call-overload]
        finally:
            self.budget.compiling = compiling

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        step = self.budget.step
        for item in iterable:
            step()
            yield item

    def bounded_concat(self, *parts: Any) -> str:
        self.budget.step()
        for p in parts:
            self.budget.check_size(_size(p))
        texts = [str(p) for p in parts]
        self.budget.check_size(sum(map(len, texts)), "a string")
        return "".join(texts)

    def concat(self, pieces: Iterable[str]) -> str:
        """What a block renders into a value (``{% set %}...{% endset %}``, a macro, a ``{% filter
        %}`` block, ``caller()``), joined only while it stays within :data:`MAX_CHARS`."""
        out: list[str] = []
        length = 0
        for piece in pieces:
            length += len(piece)
            if length > MAX_CHARS:
                raise TooCostly(f"would build a string of more than {MAX_CHARS:,} characters")
            out.append(piece)
        return "".join(out)

    def bounded_output(self, value: Any) -> Any:
        """Every ``{{ value }}`` before it is turned into text (a list of lists can hold far more
        than it took to build)."""
        self.budget.check_size(_size(value))
        return value

    def bounded_items(self, items: Iterator[Any]) -> Iterator[Any]:
        """What a filter yields lazily (``map``, ``select``...), within :data:`MAX_CHARS` in all."""
        size = 0
        for item in items:
            size += _size(item) + 1
            self.budget.check_size(size)
            yield item

    # -- intercepts -----------------------------------------------------------------------------

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        b = self.budget
        b.step()
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and right > 0 and abs(left) > 1:
            b.check_int(right * abs(left).bit_length())
        elif operator == "*":
            if ints:
                b.check_int(abs(left).bit_length() + abs(right).bit_length())
            elif isinstance(right, int) and not isinstance(right, bool):
                b.check_size(_size(left) * right)
            elif isinstance(left, int) and not isinstance(left, bool):
                b.check_size(_size(right) * left)
        elif operator == "+" and not ints:
            b.check_size(_size(left) + _size(right))
        elif operator == "%" and isinstance(left, str):
            if _WIDE_FORMAT.search(left):
                raise TooCostly("uses a format width or precision of millions of characters")
            values = right.values() if isinstance(right, Mapping) else right if isinstance(right, tuple) else (right,)
            b.check_size(len(left) + left.count("%") * _largest(values), "a string")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        b = __self.budget
        b.step()
        for arg in (*args, *kwargs.values()):
            b.check_size(_size(arg))
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        if isinstance(method, _BUILTIN_METHODS):  # 'x'.center(10**9), ljust, zfill, expandtabs...
            name = getattr(method, "__name__", "a method")
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
                    raise TooCostly(f"calls {name} with {arg:,}; at most {MAX_CHARS:,}")
            if name == "join" and args and not isinstance(args[0], Sized):
                args = (list(args[0]), *args[1:])
            b.check_size(_built_size(name, (getattr(method, "__self__", None), *args), kwargs), "a string")
        result = super().call(__context, __obj, *args, **kwargs)
        b.check_size(_size(result))
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, str) and attribute in ("format", "format_map") and _WIDE_FORMAT.search(obj):
            raise TooCostly("uses a format width or precision of millions of characters")
        return super().getattr(obj, attribute)

    def _guard_filter(self, name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        sizing = name in _SIZING_FILTERS
        skip = 0 if _PassArg.from_obj(f) is None else 1  # the context, environment or eval context Jinja passes first

        @functools.wraps(f)  # keeps Jinja's pass_context / pass_environment marks
        def guarded(*args: Any, **kwargs: Any) -> Any:
            b = self.budget
            if b.compiling:
                raise TooCostly("not at compile time")  # Jinja then leaves it to run time
            b.step()
            if sizing:
                for arg in (*args[skip + 1 :], *kwargs.values()):
                    if isinstance(arg, (int, float)) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
                        raise TooCostly(f"passes {arg:,} to the {name} filter; at most {MAX_CHARS:,}")
            if name == "format" and args and isinstance(args[0], str) and _WIDE_FORMAT.search(args[0]):
                raise TooCostly("uses a format width or precision of millions of characters")
            for arg in (*args[skip:], *kwargs.values()):
                b.check_size(_size(arg))
            if name == "join" and len(args) > skip and not isinstance(args[skip], Sized):
                args = (*args[:skip], list(args[skip]), *args[skip + 1 :])
            b.check_size(_built_size(name, args[skip:], kwargs), "a string")
            result = f(*args, **kwargs)
            if isinstance(result, Iterator):
                return self.bounded_items(result)
            b.check_size(_size(result))
            return result

        return guarded

    def _range(self, *args: int) -> Iterable[int]:
        r = range(*args)
        self.budget.check_size(len(r), "a range")
        return r

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        for value in (n, min, max):
            if not isinstance(value, int) or value > 1000:
                raise TooCostly(f"calls lipsum({n}, min={min}, max={max}); at most 1,000 of each")
        from jinja2.utils import generate_lorem_ipsum

        return str(generate_lorem_ipsum(n, html, min, max))


class _Charged(NodeTransformer):
    """Routes what the sandbox does not intercept through the budget: the iterable of every
    ``{% for %}`` becomes ``bounded_iter(iterable)``, every ``a ~ b`` becomes
    ``bounded_concat(a, b)`` (both methods of the environment, called through its ``call``)."""

    def __init__(self, env: jinja2.Environment):
        self.env = env

    def _call(self, method: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(method), args, [], None, None)
        return call.set_lineno(lineno).set_environment(self.env)  # type: ignore[return-value]

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._call("bounded_iter", [node.iter], node.lineno)  # type: ignore[list-item]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return self._call("bounded_concat", node.nodes, node.lineno)


_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_JINJA_GLOBALS = frozenset(jinja2.Environment().globals)


class Templates:
    """Compiles and renders the templated strings of the manifests in one folder."""

    def __init__(self, root: Path, environ: Mapping[str, str]):
        self.root = root
        #: Files read through {% include %} / {% import %} / {% extends %}.
        self.files_read: set[Path] = set()
        #: What the templates of this manifest may still spend (module docstring).
        self.budget = Budget()
        self.env = _BoundedEnvironment(
            self.budget,
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
        if self.budget.exhausted:
            raise TemplateProblem(self.budget.exhausted)
        template = self.compile(source)
        if self.budget.exhausted:
            raise TemplateProblem(self.budget.exhausted)
        if isinstance(template, _Substitution):
            try:
                text = template.render(variables)
            except KeyError as e:
                raise _undefined_problem(f"'{e.args[0]}' is undefined", variables) from None
            if len(text) > MAX_CHARS:
                raise TemplateProblem(f"template too costly: renders {len(text):,} characters; at most {MAX_CHARS:,}")
            return text
        self.budget.start()
        try:
            # What Template.render does, minus merging the globals into a fresh dict and
            # re-reading them for every call: 3x faster on the 10,000-job benchmark.
            context = self.env.context_class(self.env, variables, template.name, template.blocks)
            out: list[str] = []
            length = 0
            for piece in template.root_render_func(context):
                length += len(piece)
                if length > MAX_CHARS:
                    raise TooCostly(f"renders more than {MAX_CHARS:,} characters")
                out.append(piece)
            return "".join(out)
        except TooCostly as e:
            raise TemplateProblem(
                f"template too costly: it {e}. Templates are bounded (at most {MAX_CHARS:,} characters, "
                f"{MAX_STEPS:,} loop iterations and calls, {MAX_SECONDS:g} s per value); simplify it"
                if not self.budget.exhausted
                else self.budget.exhausted
            ) from None
        except SecretEnvVar as e:
            raise TemplateProblem(
                f"templates cannot read {e.name}: it holds the API key, which must never reach a prompt, "
                "a name, a file or an image URL"
            ) from None
        except MissingEnvVar as e:
            raise TemplateProblem(
                f"environment variable {e.name} is not set; set it, or give a fallback with "
                f"{{{{ env.get('{e.name}', '...') }}}}"
            ) from None
        except jinja2.UndefinedError as e:
            raise _undefined_problem(str(e), variables) from None
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
        except RecursionError:
            raise TemplateProblem(
                "template error: it calls itself without end (a macro or an include that recurses)"
            ) from None
        except (
            jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, MemoryError,
            AssertionError, AttributeError, RuntimeError,  # truncate's asserts, dictsort of a number, cycler()
        ) as e:
            # The template is the user's code: its failures are manifest problems, located by the
            # caller, not crashes of vidbatch.
            raise TemplateProblem(f"template error: {type(e).__name__}: {str(e)[:300]}") from None
        finally:
            self.budget.stop()


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


def _undefined_problem(text: str, variables: Mapping[str, Any]) -> TemplateProblem:
    m = _UNDEFINED.match(text)
    return TemplateProblem(_undefined_message(text, variables), undefined=m.group(1) if m else None)


def _undefined_message(text: str, variables: Mapping[str, Any]) -> str:
    m = _UNDEFINED.match(text)
    if not m:
        return f"template error: {text}"
    name = m.group(1)
    if name in variables:  # defined for the job, so undefined where it was used: a template imported without its context
        return (
            f"undefined variable {name!r} in an imported template: {{% import %}} does not pass the job's variables; "
            f"write {{% import '...' as x with context %}}, or pass {name} to the macro"
        )
    known = sorted(k for k in variables if k not in RESERVED_NAMES and k not in _JINJA_GLOBALS)
    near = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return (
        f"undefined variable {name!r}; {hint}define it in [vars], pass --var {name}=..., "
        f"or add it to the job's matrix or foreach rows"
        + (f" (variables: {', '.join(known)})" if known and len(known) <= 12 else "")
    )
