"""Reading a manifest file into plain data, and finding the line a value was written on.

The parsers (``tomllib``, ``json``) give back plain dicts without positions. Positions are only
needed when something is wrong, so they are recovered lazily from the text by a *locator*:

- JSON: a small scanner walks the (already valid) text once and records the line of every key
  and value by path, so ``("jobs", 3, "duration")`` maps to an exact line.
- TOML: a line scanner finds table headers (``[defaults]``, the k-th ``[[jobs]]``) and then the
  ``key =`` line inside that table. It is a heuristic (a key inside a multi-line string could fool
  it) but it is only used to point at a line, never to read a value.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..images import FileTooLarge, NotRegularFile, describe_size, read_regular

__all__ = ["FileTooLarge", "NotRegularFile", "describe_size", "read_regular"]  # re-exported for rows, templates

MANIFEST_SUFFIXES = (".toml", ".json")
#: The largest manifest vidbatch reads: far above any hand-written one (10,000 jobs are about
#: 1 MB), and small enough that parsing it stays within seconds (Python's TOML parser reads about
#: 3 MB/s of string). Images belong in files beside the manifest, not inline as data URLs.
MANIFEST_MAX_BYTES = 8 * 1024 * 1024
#: A manifest larger than this is refused by :func:`is_manifest_file` (watch mode sniffing only).
SNIFF_MAX_BYTES = MANIFEST_MAX_BYTES
#: Deepest nesting of lists and tables a manifest may have (a real one has four or five levels).
MAX_DEPTH = 32
#: Largest integer a manifest may hold: JSON's safe integers; a bigger one is a typo or an attack.
MAX_INTEGER = 2**53

PathKey = tuple["str | int", ...]


class Locator(Protocol):
    def line(self, path: PathKey) -> int | None: ...


class SourceError(Exception):
    """The file cannot be read or parsed; ``line`` when the parser said where."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Document:
    """A parsed manifest: its data, its format, and a way back from a value to its line."""

    path: Path
    format: str  # "toml" or "json"
    data: Any
    text: str
    _locator: Locator | None = field(default=None, repr=False)
    _lines: dict[PathKey, int | None] = field(default_factory=dict, repr=False)

    def line(self, path: PathKey) -> int | None:
        """The line ``path`` (keys and list indexes) was written on, or its nearest parent's."""
        path = tuple(path)
        if path not in self._lines:
            if self._locator is None:
                self._locator = JsonLocator(self.text) if self.format == "json" else TomlLocator(self.text)
            self._lines[path] = self._locator.line(path)
        return self._lines[path]


def read_problem(e: OSError, path: Path | str) -> str:
    """Why a file could not be read by :func:`read_regular`, in words that follow its name."""
    if isinstance(e, FileNotFoundError):
        return f"not found ({path})"
    if isinstance(e, IsADirectoryError):
        return f"is a folder, not a file ({path})"
    if isinstance(e, NotRegularFile):
        return f"is not a regular file ({path} is a pipe, a device or a socket); vidbatch reads only regular files"
    if isinstance(e, FileTooLarge):
        return f"is {describe_size(e.size)}; at most {describe_size(e.limit)} is read ({path})"
    return f"cannot be read: {e.strerror or e} ({path})"


def read_text(path: Path) -> str:
    try:
        data = read_regular(path, MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        raise SourceError(f"no such file ({path})") from None
    except IsADirectoryError:
        raise SourceError("is a folder, not a file") from None
    except FileTooLarge as e:
        raise SourceError(
            f"is {describe_size(e.size)}; a manifest may be at most {describe_size(e.limit)} "
            "(put images in files beside it rather than inline data URLs, and rows in a foreach file)"
        ) from None
    except NotRegularFile as e:
        raise SourceError(read_problem(e, path).replace(f" ({path}", " (it")) from None
    except OSError as e:
        raise SourceError(f"cannot be read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(f"is not UTF-8 text (byte {e.start})") from None


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse(path: Path, text: str) -> Document:
    """The parsed document; raises :class:`SourceError` for a syntax error, and for values no
    manifest holds (see :func:`value_problem`)."""
    doc = _parse(path, text)
    found = value_problem(doc.data)
    if found is not None:
        where, message = found
        line = doc.line(where) if where else None
        raise SourceError(f"{_dotted(where)}: {message}" if where else message, line)
    return doc


def _parse(path: Path, text: str) -> Document:
    if "\x00" in text:
        n = text.count("\n", 0, text.index("\x00")) + 1
        raise SourceError("contains a NUL character, which text never holds (is it a binary file?)", n)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except RecursionError:
            raise SourceError(f"nests lists or tables too deeply (at most {MAX_DEPTH} levels)") from None
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            m = _TOML_AT.search(msg)
            line = int(m.group(1)) if m else None
            if m:
                msg = msg[: m.start()] + f" (column {m.group(2)})"
            raise SourceError(f"TOML syntax error: {msg}", line) from None
        except ValueError as e:  # an integer of more digits than Python converts
            raise SourceError(f"TOML value error: {e}") from None
        return Document(path, "toml", data, text)
    if suffix == ".json":
        try:
            data = json.loads(
                text,
                object_pairs_hook=_no_duplicate_keys,
                parse_constant=_BadNumber,
                parse_int=_json_int,
            )
        except RecursionError:
            raise SourceError(f"nests lists or objects too deeply (at most {MAX_DEPTH} levels)") from None
        except json.JSONDecodeError as e:
            raise SourceError(f"JSON syntax error: {e.msg} (column {e.colno})", e.lineno) from None
        except _DuplicateKey as e:
            raise SourceError(
                f"JSON key {e.key!r} appears twice in one object; JSON parsers keep only one of them",
                _first_line_of(text, json.dumps(e.key)),
            ) from None
        return Document(path, "json", data, text)
    raise SourceError(f"is not a manifest: use a .toml or .json file (got {path.suffix or 'no extension'!r})")


class _BadNumber:
    """A JSON number no manifest can mean (NaN, Infinity, an integer of hundreds of digits), kept
    as its text until :func:`value_problem` reports where it is."""

    def __init__(self, text: str):
        self.text = text if len(text) <= 20 else f"{text[:8]}…({len(text)} digits)"


def _json_int(text: str) -> int | _BadNumber:
    return int(text) if len(text) <= 18 else _BadNumber(text)


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def value_problem(data: Any) -> tuple[PathKey, str] | None:
    """(where, why) for the first value no manifest may hold, walking iteratively (no recursion
    to exhaust): nesting deeper than :data:`MAX_DEPTH`; NaN, infinities and integers beyond
    :data:`MAX_INTEGER`; strings with a lone surrogate (not text: ``"\\ud800"`` in JSON) or a
    NUL character."""
    stack: list[tuple[PathKey, Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where, "contains a NUL character; remove it"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                return where, (
                    f"contains a lone surrogate (\\u{ord(value[e.start]):04x} at character {e.start}), "
                    "which is not text; fix the escape"
                )
        elif isinstance(value, _BadNumber):
            return where, f"{value.text} is not a usable number"
        elif isinstance(value, bool):
            continue
        elif isinstance(value, float):
            if not math.isfinite(value):
                return where, f"{value} is not a usable number"
        elif isinstance(value, int):
            if abs(value) > MAX_INTEGER:
                return where, f"{value if value.bit_length() < 200 else 'a number of ' + str(value.bit_length()) + ' bits'} is too large"
        elif isinstance(value, (dict, list)):
            if len(where) >= MAX_DEPTH:
                return where, f"nests lists or tables too deeply (at most {MAX_DEPTH} levels)"
            items = list(value.items() if isinstance(value, dict) else enumerate(value))
            for key, _ in items:
                if isinstance(key, str) and (not key.isascii() or "\x00" in key):
                    found = value_problem(key)
                    if found is not None:
                        return where, f"a key {found[1]}"
            stack.extend(((*where, key), item) for key, item in reversed(items))
    return None


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _first_line_of(text: str, needle: str) -> int | None:
    i = text.find(needle)
    return text.count("\n", 0, i) + 1 if i >= 0 else None


def load_document(path: Path) -> Document:
    return parse(path, read_text(path))


def is_manifest_file(path: Path) -> bool:
    """Whether ``path`` is a .toml/.json file whose top level has a ``jobs`` key. Never raises."""
    try:
        path = Path(path)
        if path.suffix.lower() not in MANIFEST_SUFFIXES or not path.is_file():
            return False
        text = read_regular(path, SNIFF_MAX_BYTES).decode("utf-8-sig")
        if "jobs" not in text:
            return False
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        return isinstance(data, dict) and "jobs" in data
    except (OSError, ValueError, RecursionError):  # TOMLDecodeError, JSONDecodeError, UnicodeError are ValueErrors
        return False


# --- JSON locator -----------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_SCALAR = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_JSON_WS = re.compile(r"[ \t\r\n]*")


class JsonLocator:
    """Line of every key and value of a valid JSON text, by path."""

    def __init__(self, text: str):
        self.text = text
        self.newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[PathKey, int] = {}
        try:
            self._value(self._ws(0), ())
        except (IndexError, ValueError, RecursionError):  # only ever fed valid JSON; be safe anyway
            pass

    def line(self, path: PathKey) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def _ws(self, pos: int) -> int:
        return _JSON_WS.match(self.text, pos).end()  # type: ignore[union-attr]

    def _value(self, pos: int, path: PathKey) -> int:
        self.lines.setdefault(path, self._line_at(pos))
        c = self.text[pos]
        if c == "{":
            pos = self._ws(pos + 1)
            if self.text[pos] == "}":
                return pos + 1
            while True:
                m = _JSON_STRING.match(self.text, pos)
                if m is None:
                    raise ValueError(pos)
                key = json.loads(m.group(0))
                self.lines.setdefault((*path, key), self._line_at(pos))
                pos = self._ws(m.end())
                pos = self._ws(pos + 1)  # the colon
                pos = self._ws(self._value(pos, (*path, key)))
                if self.text[pos] == "}":
                    return pos + 1
                pos = self._ws(pos + 1)  # the comma
        if c == "[":
            pos = self._ws(pos + 1)
            if self.text[pos] == "]":
                return pos + 1
            i = 0
            while True:
                pos = self._ws(self._value(pos, (*path, i)))
                i += 1
                if self.text[pos] == "]":
                    return pos + 1
                pos = self._ws(pos + 1)
        m = (_JSON_STRING if c == '"' else _JSON_SCALAR).match(self.text, pos)
        if m is None:
            raise ValueError(pos)
        return m.end()


# --- TOML locator -----------------------------------------------------------------------------

_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _key_pattern(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"(?:^|[\s{{,]|\.)(?:{k}|\"{k}\"|'{k}')\s*=")


class TomlLocator:
    """Lines of TOML tables and keys, found by scanning (see the module docstring)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        #: (line number, dotted table name, is an array-of-tables header)
        self.headers: list[tuple[int, str, bool]] = []
        self.in_string: set[int] = set()
        open_quote: str | None = None
        for n, line in enumerate(self.lines, 1):
            if open_quote:
                self.in_string.add(n)
                if line.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            m = _TOML_HEADER.match(line)
            if m:
                name = ".".join(p.strip().strip("\"'") for p in m.group(2).split("."))
                self.headers.append((n, name, m.group(1) == "[["))
                continue
            for q in ('"""', "'''"):
                if line.count(q) % 2 == 1:
                    open_quote = q
                    break

    def _find_key(self, key: str, start: int, end: int) -> int | None:
        pattern = _key_pattern(key)
        for n in range(start, end + 1):
            if n in self.in_string:
                continue
            if pattern.search(self.lines[n - 1]):
                return n
        return None

    def _block(self, table: str, index: int | None) -> tuple[int, int] | None:
        """First and last line of the table (or the index-th array-of-tables entry) called ``table``."""
        count = -1
        for i, (n, name, is_array) in enumerate(self.headers):
            if name != table or (index is not None) != is_array:
                continue
            count += 1
            if index is not None and count != index:
                continue
            end = len(self.lines)
            for n2, name2, _ in self.headers[i + 1 :]:
                if not name2.startswith(table + "."):
                    end = n2 - 1
                    break
            return n, end
        return None

    def _top_end(self) -> int:
        return (self.headers[0][0] - 1) if self.headers else len(self.lines)

    def line(self, path: PathKey) -> int | None:
        path = tuple(path)
        if not path:
            return None
        head = path[0]
        if not isinstance(head, str):
            return None
        rest = path[1:]
        if head == "jobs" and rest and isinstance(rest[0], int):
            block = self._block("jobs", rest[0])
            rest = rest[1:]
        else:
            block = self._block(head, None) if head in ("defaults", "vars") else None
        if block is None:
            # an inline table / array, or a top-level key
            top = self._find_key(head, 1, self._top_end())
            if top is None:
                return None
            block = (top, len(self.lines))
            if not rest:
                return top
        start, end = block
        for key in reversed([k for k in rest if isinstance(k, str)]):
            sub = self._block_sub(start, end, key)
            if sub is not None:
                return sub
        return start

    def _block_sub(self, start: int, end: int, key: str) -> int | None:
        for n, name, _ in self.headers:
            if start < n <= end and name.rsplit(".", 1)[-1] == key:
                return n
        return self._find_key(key, start, end)
