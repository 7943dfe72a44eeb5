"""The loader of your own files: CSV, TSV, JSON lines and Parquet, described by the config's data options.

Where the rows come from (a file, folder, glob or list; compressed or archived) is :mod:`.sources`; this
module reads the rows, takes the text, label and group of each, and says what it dropped and why. Labels
keep their names (``neg``, ``pos``; stars ``1`` … ``5``): class *i* of the task is ``task.classes[i]``.

TSV quoting. In a tab-separated file the tab and the line end delimit; the format has no quoting, and a
double quote in a text is just a character (``He said "no"``). Read with CSV quoting, a text that opens
with an unbalanced quote swallows the lines after it, rows and all, without an error. So a ``tsv`` file is
read with ``quoting: none`` unless every field holding a double quote in its first megabyte is CSV-quoted
(wrapped in quotes, inner quotes doubled, as Python's csv module and pandas write a TSV): then CSV quoting,
which such a writer needs for its texts holding tabs or line ends. A ``csv`` file has CSV quoting (RFC 4180).
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, LoadReport, Split, holdout, task_for
from .files import csv_reader, to_float
from .groups import GroupCodes, n_groups, shared_groups
from .sources import DataFile, data_files, open_source

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
DICT_ROWS = ("json", "jsonl", "parquet")  # formats whose rows are mappings (nested fields: "author.name")
DELIMITED = ("csv", "tsv")
QUOTINGS = ("csv", "none")
_SNIFF_BYTES = 1 << 20
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by the surrogateescape decoder
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _repair(value: str) -> str:
    """A field read with surrogateescape, its non-UTF-8 bytes replaced as a replacing decoder does."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class Options:
    fmt: str
    text_columns: tuple[str, ...]
    label_column: str | None
    label_re: re.Pattern | None
    group_column: str | None
    delimiter: str
    quoting: str | None  # None: tsv decides per file (see the module's doc)
    member: str | None
    label_map: dict | None
    columns: tuple[str, ...] | None
    kind: str | None
    records: tuple[str, ...] | None = None  # json: the path of the list of records inside the document
    where: tuple[tuple[str, frozenset], ...] = ()  # (column, the values a row may have there)

    @property
    def fields(self) -> list[str]:
        return [*self.text_columns, *([self.label_column] if self.label_column else []),
                *([self.group_column] if self.group_column else []), *(c for c, _ in self.where)]


def _options(fmt, text_columns, label_column, task_kind, group_column, delimiter, quoting, member, label_map,
             label_from_path, columns, records=None, where=None) -> Options:
    """The options checked against each other: each mistake is one error naming the option and the fix."""
    if not text_columns:
        raise RnnbenchError(f"data set '{fmt}' needs data.text_columns (the column(s) holding the text)")
    if label_column and label_from_path:
        raise RnnbenchError("data.label_column and data.label_from_path both say where the label is: give one")
    if not label_column and not label_from_path:
        raise RnnbenchError(f"data set '{fmt}' needs data.label_column (or data.label_from_path, for one file "
                            f"per class)")
    for key, value in (("delimiter", delimiter), ("quoting", quoting), ("columns", columns)):
        if value is not None and fmt not in DELIMITED:
            raise RnnbenchError(f"data.{key} is for csv and tsv files, not {fmt}: remove it")
    if delimiter is not None:
        delimiter = _DELIMITER_WORDS.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise RnnbenchError(f"data.delimiter: one character (such as ';' or '|', or \"\\t\"), got {delimiter!r}")
    if quoting is not None and quoting not in QUOTINGS:
        raise RnnbenchError(f"data.quoting: one of {', '.join(QUOTINGS)} (or null), got {quoting!r}")
    label_re = None
    if label_from_path:
        try:
            label_re = re.compile(label_from_path)
        except re.error as e:
            raise RnnbenchError(f"data.label_from_path: not a regular expression ({e}): {label_from_path!r}") from None
        if label_re.groups != 1:
            raise RnnbenchError(f"data.label_from_path: needs exactly one group (the label), such as "
                                f"'rt-polarity\\.(pos|neg)$'; {label_from_path!r} has {label_re.groups}")
    if label_map is not None:
        if not label_map:
            raise RnnbenchError("data.label_map is empty: map each raw label to a class name (or null to drop it)")
        if task_kind == "regression":
            text = [f"{k!r}: {v!r}" for k, v in label_map.items() if v is not None and isinstance(v, str)]
            if text:
                raise RnnbenchError(f"data.label_map: regression needs numbers, got {text[0]}")
    if columns is not None:
        if not columns or len(set(columns)) != len(columns):
            raise RnnbenchError(f"data.columns: the names of the file's columns, each once, got {columns!r}")
        wanted = [*text_columns, *([label_column] if label_column else []), *([group_column] if group_column else [])]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise RnnbenchError(f"data.columns {list(columns)} has no column '{missing[0]}' (named by the other "
                                f"data options)")
    if records is not None and fmt != "json":
        raise RnnbenchError(f"data.records is for json files (one JSON document each), not {fmt}: remove it, or set "
                            "data.dataset: json")
    if records is not None and not all(records.split(".")):
        raise RnnbenchError(f"data.records: a dotted path of keys such as 'reviews' or 'data.items', got {records!r}")
    rules = []
    for column, allowed in (where or {}).items():
        values = allowed if isinstance(allowed, list) else [allowed]
        if not values:
            raise RnnbenchError(f"data.where.{column}: an empty list keeps no row")
        rules.append((column, frozenset(_label_text(v) for v in values)))
    return Options(fmt, tuple(text_columns), label_column, label_re, group_column,
                   delimiter or ("\t" if fmt == "tsv" else ","), quoting, member, label_map,
                   tuple(columns) if columns is not None else None, task_kind,
                   tuple(records.split(".")) if records else None, tuple(rules))


# ------------------------------------------------------------------------------ TSV quoting


# one record of a TSV as Python's csv module (or pandas) writes it: each field quoted (inner quotes doubled; tabs
# and line ends allowed inside) or free of double quotes
_CSV_RECORD = re.compile(r'(?:"(?:[^"]|"")*"|[^"\t\n]*)(?:\t(?:"(?:[^"]|"")*"|[^"\t\n]*))*')


@functools.cache
def _sniffed(path: Path, size: int, mtime_ns: int, shown: str, member: str | None) -> str:
    with open_source(DataFile(path, shown), member) as (raw, _):
        data = raw.read(_SNIFF_BYTES)
    cut = len(data) == _SNIFF_BYTES  # the sample ends within the file
    lines = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    if cut and len(lines) > 1:
        lines = lines[:-1]  # a line cut by the sample's end
    quoted, i = 0, 0
    while i < len(lines):
        record, i = lines[i], i + 1
        if '"' not in record:
            continue
        start = i
        while record.count('"') % 2 and i < len(lines) and i - start < 100:  # a quoted field's line ends
            record, i = f"{record}\n{lines[i]}", i + 1
        if cut and i == len(lines) and record.count('"') % 2:
            break  # a record the sample's end cuts: undecided by it
        if not _CSV_RECORD.fullmatch(record):
            return "none"
        quoted += 1
    return "csv" if quoted else "" if '"' not in "".join(lines) else "none"


def tsv_quoting(f: DataFile, member: str | None) -> str:
    """How a ``tsv`` file with no ``data.quoting`` is read: "csv" when every field with a double quote in its
    first megabyte is CSV-quoted, else "none" (the module's doc says why); "" (read as "none") when that
    megabyte holds no double quote, so the quoting makes no difference there."""
    st = f.path.stat()
    return _sniffed(f.path, st.st_size, st.st_mtime_ns, f.shown, member)


def _tsv_default(f: DataFile, opts: Options, shown: str, report: LoadReport) -> str:
    """The quoting of a tsv file with no data.quoting, said in a note where the file holds double quotes. A
    file of one text a line (one column) has no quoting: each line is its text."""
    if opts.columns is not None and len(opts.columns) == 1:
        return "none"
    quoting = tsv_quoting(f, opts.member)
    if quoting == "csv":
        report.notes.append(f"{shown}: read with CSV quoting (every quoted field in it is CSV-quoted)")
    elif quoting == "none":
        report.notes.append(f"{shown}: read with quoting none (its double quotes are text; tabs and line ends "
                            f"delimit): data.quoting: csv reads CSV-style quoting")
    return quoting or "none"


def quoting_for_hash(data: dict) -> str | None:
    """The ``data.quoting`` a run's hash holds: None where the files are read CSV-quoted, as every csv and tsv
    file was before the option existed (so those runs keep their folders), else the quoting used. A tsv
    file with no ``data.quoting`` counts by what :func:`tsv_quoting` decides for it."""
    fmt, quoting = data.get("dataset"), data.get("quoting")
    if fmt not in DELIMITED:
        return quoting
    if quoting is None and fmt == "tsv" and data.get("columns") and len(data["columns"]) == 1:
        return "none"  # one text a line: no quoting (see _tsv_default)
    if quoting is None and fmt == "tsv" and data.get("path"):
        try:
            label_re = re.compile(data["label_from_path"]) if data.get("label_from_path") else None
            files, _ = data_files(data["path"], fmt, label_re)
            if data.get("test_path"):
                files += data_files(data["test_path"], fmt, label_re, key="data.test_path")[0]
            found = sorted({tsv_quoting(f, data.get("member")) or "csv" for f in files})  # "": no quotes seen
        except (RnnbenchError, OSError, re.error):
            return None  # unreadable: the load says why
        quoting = found[0] if len(found) == 1 else ",".join(found)
    return None if quoting in (None, "csv") else quoting


# ------------------------------------------------------------------------------ rows


_BLANK = object()  # an empty line


def _headed(rows: Iterator, opts: Options, shown: str) -> tuple[list[str], Iterator]:
    """The column names (data.columns, else the first row) and the rows after them."""
    if opts.columns is not None:
        return list(opts.columns), rows
    for row in rows:
        if row is not _BLANK:
            names = [c.strip() for c in row]
            _check_columns(names, opts, shown)
            return names, rows
    raise RnnbenchError(f"cannot read {shown}: empty file")


def _check_columns(names: list[str], opts: Options, shown: str) -> None:
    missing = [c for c in opts.fields if c not in names]
    if not missing:
        return
    hint = ""
    if len(names) == 1:
        seen = [d for d in (";", "|", "\t", ",") if d in names[0] and d != opts.delimiter]
        if seen:
            d = "\"\\t\"" if seen[0] == "\t" else repr(seen[0])
            hint = (f"; the header is one column, and the file seems to use {d} as its delimiter: set "
                    f"data.delimiter: {d}" + (" (or data.dataset: tsv)" if seen[0] == "\t" else ""))
    if not hint and any(len(c) > 40 or c.count(" ") >= 3 or to_float(c) is not None for c in names):
        hint = ("; its first row looks like data, not a header: if the file has no header, name its columns "
                "with data.columns")
    listing = ", ".join(c for c in names if c) or "none"
    raise RnnbenchError(f"{shown}: no column '{missing[0]}' (columns: {listing}){hint}")


def _delimited(raw, opts: Options, quoting: str) -> Iterator:
    """The rows of a csv or tsv stream as lists of fields (_BLANK for an empty line)."""
    if quoting == "csv":
        f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        for row in csv_reader(f, opts.delimiter):
            yield row if row else _BLANK
        return
    f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="\n")
    whole = opts.columns is not None and len(opts.columns) == 1  # one text a line: tabs are text
    for line in f:
        line = line.rstrip("\r\n")
        yield _BLANK if not line else [line] if whole else line.split(opts.delimiter)


def _json_rows(raw, shown: str) -> Iterator:
    f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="\n")
    first = True
    for line in f:
        if first and line.strip():
            first = False
            if line.strip() in ("[", "{") or line.lstrip().startswith("["):  # one document, not a row a line
                raise RnnbenchError(f"{shown} is one JSON document, not JSON lines (a record a line): set "
                                    "data.dataset: json (and data.records: the key of its list of records)")
        if not line.strip():
            yield _BLANK
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        yield row if isinstance(row, dict) else None


def _json_document_rows(raw, opts: Options, shown: str) -> Iterator:
    """The records of a file holding one JSON document: a list of records, or an object holding the list at
    ``data.records`` (an API response such as ``{"success": 1, "reviews": [...]}``)."""
    try:
        doc = json.load(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape"))
    except json.JSONDecodeError as e:
        raise RnnbenchError(f"{shown}: not a JSON document (line {e.lineno}, column {e.colno}: {e.msg}); a file "
                            "with one record a line is data.dataset: jsonl") from None
    where = "the document"
    for i, key in enumerate(opts.records or ()):
        if not isinstance(doc, dict) or key not in doc:
            keys = ", ".join(map(str, doc)) if isinstance(doc, dict) else f"a {type(doc).__name__}"
            raise RnnbenchError(f"{shown}: data.records {'.'.join(opts.records)!r}: {where} has no key {key!r} "
                                f"(keys: {keys})")
        doc, where = doc[key], f"'{'.'.join(opts.records[:i + 1])}'"
    if not isinstance(doc, list):
        lists = [k for k, v in doc.items() if isinstance(v, list)] if isinstance(doc, dict) else []
        hint = (f": name the list of records with data.records (lists here: {', '.join(lists)})" if lists else
                "; data.records names the list of records inside it")
        raise RnnbenchError(f"{shown}: {where} is a JSON {type(doc).__name__}, not a list of records{hint}")
    for row in doc:
        yield row if isinstance(row, dict) else None


def _field(row: dict, name: str):
    """A row's field, a nested one by its dotted path (``author.name``) where no key has the dotted name;
    :data:`_MISSING` where there is none."""
    if name in row:
        return row[name]
    node = row
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def _parquet_rows(f: DataFile, raw, opts: Options, shown: str) -> Iterator:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RnnbenchError("data set 'parquet' needs pyarrow: pip install 'rnnbench[parquet]'") from None
    with open(f.path, "rb") as h:
        plain = h.read(4) == b"PAR1"
    source = f.path if plain else io.BytesIO(raw.read())  # pyarrow seeks: a compressed or archived one is read whole
    try:
        pf = pq.ParquetFile(source)
    except Exception as e:  # pyarrow's errors (ArrowInvalid, ...) have no common base worth importing
        raise RnnbenchError(f"corrupt or truncated file {shown}: {e}") from None
    names = pf.schema_arrow.names
    _check_columns(names, opts, shown)
    for batch in pf.iter_batches(columns=opts.fields, batch_size=65536):
        yield from batch.to_pylist()


def _value(v, report_bytes: list) -> str | None:
    """A field as text (None when missing); bytes that are not UTF-8 flag the row in ``report_bytes``."""
    if v is None:
        return None
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            report_bytes.append(True)
            return v.decode("utf-8", "replace")
    v = v if isinstance(v, str) else _label_text(v)
    if _NOT_UTF8.search(v):
        report_bytes.append(True)
        return _repair(v)
    return v


def _label_text(v) -> str:
    """A non-string value as the text of a label: 4.0 -> "4", True -> "true"."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass
class _Rows:
    texts: list
    labels: list  # raw label text (None: missing)
    groups: list
    files: list  # (shown, rows read)
    suspects: list  # per file: (shown, width, label index, [(lines after the first of a row's fields, longest)])


def _read(specs: list[DataFile], opts: Options, split: str, report: LoadReport, codes: GroupCodes) -> _Rows:
    out = _Rows([], [], [], [], [])
    for f in specs:
        path_label = None
        if opts.label_re is not None:
            path_label = opts.label_re.search(f.shown).group(1)
        with open_source(f, opts.member, opts.fmt) as (raw, shown):
            before = report.read[split]
            if opts.fmt == "parquet":
                _take_dicts(_parquet_rows(f, raw, opts, shown), opts, split, report, codes, out, path_label, shown)
            elif opts.fmt == "jsonl":
                _take_dicts(_json_rows(raw, shown), opts, split, report, codes, out, path_label, shown)
            elif opts.fmt == "json":
                _take_dicts(_json_document_rows(raw, opts, shown), opts, split, report, codes, out, path_label, shown)
            else:
                quoting = opts.quoting or ("csv" if opts.fmt == "csv" else _tsv_default(f, opts, shown, report))
                _take_delimited(raw, opts, quoting, split, report, codes, out, path_label, shown)
            out.files.append((shown, report.read[split] - before))
    return out


def _keep(get, opts: Options, report: LoadReport, codes: GroupCodes, out: _Rows, path_label: str | None) -> None:
    """Take one row, whose field ``c`` is ``get(c)``, or count why it is dropped."""
    bad: list = []
    for column, allowed in opts.where:
        if (_value(get(column), bad) or "").strip() not in allowed:
            report.drop(f"not kept by data.where ({column})")
            return
    raw_texts = [_value(get(c), bad) for c in opts.text_columns]
    text_ = " . ".join(t.strip() for t in raw_texts if t and t.strip())
    if not text_:
        report.drop("empty text")
        return
    label = path_label if opts.label_re is not None else _value(get(opts.label_column), bad)
    group = None
    if opts.group_column:
        group = (_value(get(opts.group_column), bad) or "").strip()
        if not group:
            report.drop(f"empty {opts.group_column}")
            return
    if bad:
        report.non_utf8 += 1
    out.texts.append(text_)
    out.labels.append(None if label is None else label.strip())
    if opts.group_column:
        out.groups.append(codes(group))


def _take_dicts(rows, opts, split, report, codes, out, path_label, shown) -> None:
    for row in rows:
        if row is _BLANK:
            continue  # a blank line of a JSON-lines file is no row
        report.read[split] += 1
        if row is None:
            report.drop("malformed row")
            continue
        missing = [c for c in opts.fields if _field(row, c) is _MISSING]
        if missing:
            raise RnnbenchError(f"{shown}: no field '{missing[0]}' in row {report.read[split]} "
                                f"(fields: {', '.join(map(str, row))})")
        _keep(lambda c, row=row: _field(row, c), opts, report, codes, out, path_label)


def _take_delimited(raw, opts, quoting, split, report, codes, out, path_label, shown) -> None:
    names, rows = _headed(_delimited(raw, opts, quoting), opts, shown)
    index = {c: i for i, c in enumerate(names)}
    width = len(names)
    inner_lines = []
    for row in rows:
        report.read[split] += 1
        if row is _BLANK:
            report.drop("empty line")
            continue
        if quoting == "csv" and opts.label_column:  # fields spanning lines: rows merged by a stray quote?
            spanning = [v for v in row if "\n" in v]
            if spanning:
                inner_lines.append(([line for v in spanning for line in v.split("\n")[1:]],
                                    max(map(len, spanning))))
        if len(row) != width:
            report.drop("malformed row")
            continue
        _keep(lambda c, row=row: row[index[c]], opts, report, codes, out, path_label)
    if inner_lines:
        out.suspects.append((shown, width, index[opts.label_column], inner_lines))


# ------------------------------------------------------------------------------ labels


def _map_label(raw: str, label_map: dict, numeric_keys: dict):
    """(found, value) for the raw label: found False when the map has no entry for it."""
    if raw in label_map:
        return True, label_map[raw]
    x = to_float(raw)
    if x is not None and x in numeric_keys:
        return True, label_map[numeric_keys[x]]
    return False, None


def _odd_values(values: Counter, n: int = 5) -> str:
    top = values.most_common(n)
    more = len(values) - len(top)
    return ", ".join(f"'{v}' ({c})" for v, c in top) + (f" and {more} more" if more > 0 else "")


def _merged_rows_warning(rows: _Rows, delimiter: str, is_label) -> list[str]:
    out = []
    for shown, width, label_at, inner_lines in rows.suspects:
        n, longest = 0, 0
        for lines, length in inner_lines:
            for line in lines:
                parts = line.rstrip("\r").split(delimiter)
                if len(parts) == width and is_label(parts[label_at].strip()):
                    n, longest = n + 1, max(longest, length)
                    break
        if n:
            out.append(f"{shown}: {n} row(s) hold a line break followed by what reads as a whole row of its own "
                       f"(a label at its place; the longest such field is {longest:,} characters): unbalanced "
                       f"double quotes may have merged rows; if quotes in this file are text, set data.quoting: none")
    return out


class _Labels:
    """What each raw label of a generic file becomes: a class name, a number, or a reason to drop the row;
    and the order of the classes (``data.label_map``'s, else sorted)."""

    def __init__(self, label_map: dict | None, kind: str | None, all_labels: list, label_column: str | None,
                 shown: str):
        self.label_map, self.kind = label_map, kind
        self.unmapped, self.unparsable = Counter(), Counter()
        self.order = None
        if label_map is not None:
            self.keys = {str(k).strip(): v for k, v in label_map.items()}
            self.numeric_keys = {to_float(k): k for k in self.keys if to_float(k) is not None}
            self.order = list(dict.fromkeys(_label_text(v) for v in self.keys.values() if v is not None))
        elif kind != "regression":
            numeric = Counter(v for v in all_labels if to_float(v) is not None)
            other = Counter(v for v in all_labels if to_float(v) is None)
            if numeric and other:
                few, many = (other, numeric) if sum(other.values()) <= sum(numeric.values()) else (numeric, other)
                what = "numbers" if many is numeric else "names"
                where = f"label column '{label_column}'" if label_column else "data.label_from_path"
                raise RnnbenchError(
                    f"{shown}: {where} holds {what} ({sum(many.values()):,} rows) and {sum(few.values())} "
                    f"that are not: {_odd_values(few)}; map every value in data.label_map (null drops one), or "
                    f"fix the file")

    def target(self, raw) -> tuple | str:
        """``("cls", name)`` or ``("num", value)``, or why the row is dropped."""
        if self.label_map is not None:
            found, v = _map_label(raw, self.keys, self.numeric_keys)
            if not found:
                self.unmapped[raw] += 1
                return "label not in data.label_map"
            if v is None:
                return "label mapped to null"
            return ("num", float(v)) if self.kind == "regression" else ("cls", _label_text(v))
        if self.kind == "regression":
            x = to_float(raw)
            if x is None:
                self.unparsable[raw] += 1
                return "unparsable label"
            return ("num", x)
        return ("cls", raw)

    def notes(self) -> list[str]:
        out = []
        if self.unmapped:
            out.append(f"labels not in data.label_map (dropped): {_odd_values(self.unmapped)}")
        if self.unparsable:
            out.append(f"labels that are not numbers (dropped): {_odd_values(self.unparsable)}")
        return out


def _convert(rows: _Rows, labels: _Labels, report: LoadReport, group_column: str | None) -> tuple[Split, list]:
    """The rows whose label is kept, as a split, and their targets (class names or numbers)."""
    keep, ys = [], []
    for i, raw in enumerate(rows.labels):
        if raw is None or (raw == "" and not (labels.label_map and "" in labels.label_map)):
            report.drop("empty label")
            continue
        t = labels.target(raw)
        if isinstance(t, str):
            report.drop(t)
            continue
        keep.append(i)
        ys.append(t[1])
    groups = np.array(rows.groups, np.int64)[keep] if group_column else None
    return Split([rows.texts[i] for i in keep], ys, groups), ys


def _classes(order: list | None, train: Split, tr_y: list, test: Split | None, te_y: list | None,
             report: LoadReport) -> tuple[list[str], Split, Split | None]:
    """The classes (in ``order``, else sorted: numerically where every name is a number), and both splits'
    labels as class indices; test rows of a class the training file lacks are dropped and counted."""
    seen = set(tr_y)
    if order is not None:
        classes = [c for c in order if c in seen]
    elif all(to_float(c) is not None for c in seen):
        classes = sorted(seen, key=float)
    else:
        classes = sorted(seen)
    index = {c: i for i, c in enumerate(classes)}
    train.y = np.array([index[c] for c in tr_y], np.int64)
    if test is not None:
        keep = [i for i, c in enumerate(te_y) if c in index]
        if len(keep) < len(te_y):
            report.drop("label not in the training file", len(te_y) - len(keep))
        test = Split([test.texts[i] for i in keep], np.array([index[te_y[i]] for i in keep], np.int64),
                     test.groups[keep] if test.groups is not None else None)
    return classes, train, test


def _classification_kind(kind: str | None, classes: list[str], label_column: str | None, shown: str) -> str:
    """binary or multiclass: as ``data.task_kind`` says (checked against the classes), else by their number."""
    k = len(classes)
    where = f"column '{label_column}'" if label_column else "data.label_from_path"
    if kind == "binary" and k > 2:
        raise RnnbenchError(f"{shown}: task_kind binary but {where} has {k} classes ({', '.join(classes[:8])}): "
                            "set data.task_kind: multiclass, or map them with data.label_map")
    if k < 2:
        raise RnnbenchError(f"{shown}: {where} has one class in the training data ({classes[0]!r}): nothing to "
                            "tell apart")
    return kind or ("binary" if k <= 2 else "multiclass")


def load_generic(path, task: str, *, fmt: str, text_columns: list[str], label_column: str | None,
                 task_kind: str | None, test_path: str | None, test_fraction: float, group_column: str | None,
                 delimiter: str | None = None, quoting: str | None = None, member: str | None = None,
                 label_map: dict | None = None, label_from_path: str | None = None,
                 columns: list[str] | None = None, records: str | None = None, where: dict | None = None) -> Corpus:
    """Your CSV, TSV, JSON-lines or Parquet file(s), described by the config: the text columns (joined by
    " . "), the label column (or the label in each file's path), the kind of task; a separate test file,
    or a seeded holdout. ``path`` is a file, folder, glob or list (:func:`.sources.data_files`). With
    ``group_column``, rows sharing its value (an author, a product) stay together: validation takes whole
    groups, and so does the holdout when there is no test file (a given test file is used as it is; groups
    it shares with the training file are counted in a note). A row whose group value is empty is dropped
    and counted. ``label_map`` maps raw labels to class names (numbers for regression); those mapped to
    null and those not in it are dropped and counted."""
    opts = _options(fmt, text_columns, label_column, task_kind, group_column, delimiter, quoting, member,
                    label_map, label_from_path, columns, records, where)
    report = LoadReport()
    codes = GroupCodes()
    spec = [str(p) for p in path] if isinstance(path, (list, tuple)) else str(path)
    tr_files, ignored = data_files(spec, fmt, opts.label_re)
    te_files = data_files(test_path, fmt, opts.label_re, key="data.test_path")[0] if test_path else []
    if ignored:
        report.notes.append(f"left out {len(ignored)} file(s) of the folder that are not {fmt} files"
                            f"{' the label expression matches' if opts.label_re else ''}: "
                            f"{', '.join(ignored[:6])}{' ...' if len(ignored) > 6 else ''}")
    tr = _read(tr_files, opts, "train", report, codes)
    te = _read(te_files, opts, "test", report, codes) if te_files else None
    if len(tr.files) + len(te.files if te else []) > 1:
        report.notes.append("rows read per file: " + ", ".join(f"{s} {n:,}" for s, n in [*tr.files, *(te.files if te else [])]))
    kind = task_kind
    all_labels = [v for v in [*tr.labels, *(te.labels if te else [])] if v not in (None, "")]
    labels = _Labels(label_map, kind, all_labels, label_column, tr_files[0].shown)
    train, tr_y = _convert(tr, labels, report, group_column)
    test, te_y = _convert(te, labels, report, group_column) if te else (None, None)
    classes: list[str] = []
    if kind == "regression":
        train.y = np.array(tr_y, np.float64)
        if test is not None:
            test.y = np.array(te_y, np.float64)
    else:
        classes, train, test = _classes(labels.order, train, tr_y, test, te_y, report)
    report.notes += labels.notes()
    if tr.suspects or (te and te.suspects):
        is_label = ((lambda v: to_float(v) is not None) if kind == "regression" else
                    (lambda v, known=set(all_labels): v in known))
        report.warnings += _merged_rows_warning(tr, opts.delimiter, is_label)
        if te:
            report.warnings += _merged_rows_warning(te, opts.delimiter, is_label)
    if test is None:
        train, test = holdout(train.texts, train.y, test_fraction, groups=train.groups)
    if kind != "regression" and len(train):
        kind = _classification_kind(kind, classes, label_column, tr_files[0].shown)
    if group_column:
        report.notes.append(
            f"rows grouped by {group_column}: {n_groups(train.groups)} groups in the training pool, "
            f"{n_groups(test.groups)} in test; validation{'' if test_path else ' and test'} take whole groups")
        if shared := shared_groups(train.groups, test.groups):
            report.notes.append(f"{shared} {group_column} group(s) have rows in both the training file and "
                                f"the test file: test scores may be inflated by their leakage")
    return Corpus(fmt, task_for(task, kind or "binary", train.y, classes), train, test, report)
