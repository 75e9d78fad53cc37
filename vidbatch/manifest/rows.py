"""Expansion rows: what ``matrix`` and ``foreach`` turn one ``[[jobs]]`` table into.

A job table expands to one job per *row*. A row is a set of variables plus where it came from
(for error messages). ``matrix`` gives the cartesian product of its lists, in the order the keys
are written, the last key varying fastest. ``foreach`` gives one row per record of a file (CSV,
TSV, a JSON list of objects, JSON Lines) or of an inline list of tables. With both, every foreach
row is combined with every matrix combination (foreach outer, matrix inner); a variable set by
both is an error, since neither could sensibly win.

CSV and TSV cells are text. A row records that (``from_text``) so the loader can turn the text of
a cell that fills a typed request field (``duration = "10"``) into its type. An empty cell fills
nothing, so optional columns work.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from .source import FileTooLarge, describe_size, read_problem, read_regular, value_problem
from .templates import RESERVED_NAMES

ROW_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson")
#: The largest foreach file read (a CSV of 100,000 rows of long prompts is a few MB).
FOREACH_MAX_BYTES = 16 * 1024 * 1024


class Row:
    """The variables of one job-to-be, and where they came from (for messages)."""

    __slots__ = ("values", "label", "file", "line", "from_text")

    def __init__(
        self,
        values: Mapping[str, Any],
        label: str,  # "" for a job without matrix/foreach
        file: Path | None = None,  # the foreach file, when the row came from one
        line: int | None = None,  # its line in that file, when known
        from_text: bool = False,  # CSV/TSV: every value is text
    ):
        self.values = values
        self.label = label
        self.file = file
        self.line = line
        self.from_text = from_text

    def __repr__(self) -> str:
        return f"Row({self.label!r}, {dict(self.values)!r})"


class RowsProblem(Exception):
    def __init__(self, message: str, *, field: str, file: Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.file = file
        self.line = line


SINGLE = [Row({}, "")]


class TooManyRows(RowsProblem):
    """The table would expand to more rows than allowed; ``count`` is how many."""

    def __init__(self, message: str, *, field: str, count: int):
        super().__init__(message, field=field)
        self.count = count


def expand(
    matrix: Mapping[str, Sequence[Any]] | None,
    foreach: str | list[Any] | None,
    folder: Path,
    files_read: set[Path],
    max_rows: int | None = None,
    secret: str | None = None,
) -> list[Row]:
    """The rows of one job table. Raises :class:`RowsProblem`, and :class:`TooManyRows` (counted
    before any row is built) when there would be more than ``max_rows``. ``secret`` (the API key)
    is never shown in a label."""
    rows = read_foreach(foreach, folder, files_read) if foreach is not None else SINGLE
    if max_rows is not None:
        sizes = [len(v) for v in (matrix or {}).values()]
        count = len(rows) * math.prod(sizes)
        if count > max_rows:
            parts = [f"{len(rows):,} foreach rows"] if foreach is not None else []
            parts += [f"{n} {k}" for n, k in zip(sizes, matrix or {})]
            raise TooManyRows(
                f"expands to {count:,} jobs ({' x '.join(parts)}); that is more than the {max_rows:,} jobs left "
                "in this manifest's limit",
                field="matrix" if matrix else "foreach",
                count=count,
            )
    if not matrix:
        return rows
    combos = matrix_rows(matrix, secret)
    if foreach is None:
        return [Row(values, label) for values, label in combos]
    out: list[Row] = []
    keys = set(matrix)
    for row in rows:
        both = keys & row.values.keys()
        if both:
            raise RowsProblem(
                f"variable {sorted(both)[0]!r} is set by both matrix and foreach; rename one of them",
                field="matrix",
                file=row.file,
                line=row.line,
            )
        for values, label in combos:
            out.append(
                Row(
                    {**row.values, **values},
                    f"{row.label}, {label}" if row.label else label,
                    row.file,
                    row.line,
                    row.from_text,
                )
            )
    return out


def matrix_rows(matrix: Mapping[str, Sequence[Any]], secret: str | None = None) -> list[tuple[dict[str, Any], str]]:
    """(variables, label) of every combination, the last key varying fastest; ``secret`` (the
    API key) reads ``<API key>`` in the labels, which messages, ``render --json`` and the job
    cache show."""
    keys = list(matrix)
    # labels are built from per-value pieces made once, not formatted per combination
    pieces = [[f"{k}={_short(v, secret)}" for v in matrix[k]] for k in keys]
    return [
        (dict(zip(keys, combo)), "matrix " + ", ".join(label))
        for combo, label in zip(itertools.product(*(matrix[k] for k in keys)), itertools.product(*pieces))
    ]


def _short(value: Any, secret: str | None = None, limit: int = 30) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if secret:
        text = text.replace(secret, "<API key>")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_foreach(spec: str | list[Any], folder: Path, files_read: set[Path]) -> list[Row]:
    if isinstance(spec, list):
        rows = [Row(dict(item), f"foreach[{i}]") for i, item in enumerate(spec)]
        for row in rows:
            _check_names(row, None)
        return rows
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else folder / path
    files_read.add(path)
    suffix = path.suffix.lower()
    if suffix not in ROW_FILE_SUFFIXES:
        raise RowsProblem(
            f"foreach file {spec} must be .csv, .tsv, .json (a list of objects) or .jsonl (got {suffix or 'no extension'!r})",
            field="foreach",
        )
    try:
        text = read_regular(path, FOREACH_MAX_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise RowsProblem(f"foreach file {spec} not found ({path})", field="foreach") from None
    except IsADirectoryError:
        raise RowsProblem(f"foreach file {spec} is a folder", field="foreach") from None
    except FileTooLarge as e:
        raise RowsProblem(
            f"foreach file {spec} is {describe_size(e.size)}; foreach files may be at most {describe_size(e.limit)}",
            field="foreach",
        ) from None
    except OSError as e:
        raise RowsProblem(f"foreach file {spec} {read_problem(e, path)}", field="foreach") from None
    except UnicodeDecodeError as e:
        raise RowsProblem(f"foreach file {spec} is not UTF-8 text (byte {e.start})", field="foreach") from None
    if suffix in (".csv", ".tsv"):
        rows = _read_csv(text, path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".json":
        rows = _read_json(text, path)
    else:
        rows = _read_jsonl(text, path)
    if not rows:
        raise RowsProblem(f"foreach file {spec} has no rows: it would expand to no jobs", field="foreach", file=path)
    for row in rows:
        _check_names(row, path)
        if not row.from_text:  # JSON rows: the values a manifest may not hold (NaN, huge numbers...)
            found = value_problem(dict(row.values))
            if found is not None:
                where, message = found
                raise RowsProblem(f"{row.label}: {'.'.join(map(str, where))} {message}", field="foreach", file=path, line=row.line)
    return rows


def _check_names(row: Row, file: Path | None) -> None:
    for name in RESERVED_NAMES:
        if name in row.values:
            raise RowsProblem(
                f"{row.label or 'row'} has a field called {name!r}, which is reserved for templates; rename it",
                field="foreach",
                file=file,
                line=row.line,
            )


def _read_csv(text: str, path: Path, delimiter: str) -> list[Row]:
    # Lines end at \n, \r\n or \r only (str.splitlines also ends one at U+2028, a form feed...,
    # which split a cell holding one into two rows); strict: a quote left open is an error, not the
    # rest of the file read into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as e:
        raise RowsProblem(f"{path.name}: {_csv_error(e)}", field="foreach", file=path, line=1) from None
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise RowsProblem(f"{path.name} has a column without a name in its header", field="foreach", file=path, line=1)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise RowsProblem(f"{path.name} has column {dupes[0]!r} twice", field="foreach", file=path, line=1)
    rows = []
    line = reader.line_num + 1  # where the next row starts (a quoted cell may span lines)
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                line = reader.line_num + 1
                continue  # blank line
            if len(cells) != len(header):
                raise RowsProblem(
                    f"{path.name} line {line} has {len(cells)} cells; the header has {len(header)}",
                    field="foreach",
                    file=path,
                    line=line,
                )
            rows.append(Row(dict(zip(header, cells)), f"{path.name} line {line}", path, line, True))
            line = reader.line_num + 1
    except csv.Error as e:
        raise RowsProblem(f"{path.name} line {line}: {_csv_error(e)}", field="foreach", file=path, line=line) from None
    return rows


def _csv_error(e: csv.Error) -> str:
    if str(e) == "unexpected end of data":
        return 'a quoted cell is never closed (a " without its closing ")'
    return str(e)


def _read_json(text: str, path: Path) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RowsProblem(
            f"{path.name}: JSON syntax error: {e.msg} (column {e.colno})", field="foreach", file=path, line=e.lineno
        ) from None
    except (RecursionError, ValueError) as e:
        raise RowsProblem(f"{path.name}: {_unreadable_json(e)}", field="foreach", file=path) from None
    if not isinstance(data, list):
        raise RowsProblem(f"{path.name} must hold a JSON list of objects", field="foreach", file=path, line=1)
    from .source import JsonLocator

    locator: JsonLocator | None = None
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            locator = locator or JsonLocator(text)
            raise RowsProblem(
                f"{path.name}[{i}] must be an object, not {type(item).__name__}",
                field="foreach",
                file=path,
                line=locator.line((i,)),
            )
        rows.append(Row(item, f"{path.name}[{i}]", path, None))
    return rows


def _read_jsonl(text: str, path: Path) -> list[Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise RowsProblem(
                f"{path.name} line {n}: JSON syntax error: {e.msg} (column {e.colno})", field="foreach", file=path, line=n
            ) from None
        except (RecursionError, ValueError) as e:
            raise RowsProblem(f"{path.name} line {n}: {_unreadable_json(e)}", field="foreach", file=path, line=n) from None
        if not isinstance(item, dict):
            raise RowsProblem(
                f"{path.name} line {n} must be a JSON object, not {type(item).__name__}", field="foreach", file=path, line=n
            )
        rows.append(Row(item, f"{path.name} line {n}", path, n))
    return rows


def _unreadable_json(e: Exception) -> str:
    if isinstance(e, RecursionError):
        return "nests lists or objects too deeply"
    return f"JSON value error: {str(e)[:200]}"
