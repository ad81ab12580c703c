"""Stream rows out of the input files, one at a time, never a whole file in memory.

Parquet and CSV go through pyarrow's streaming readers (`ParquetFile.iter_batches`, `csv.open_csv`),
their text columns read as bytes so that a non-UTF-8 value is reported at its row. JSONL and plain text
are read line by line in binary: pyarrow's JSON reader skips blank lines (its row numbers are then not
line numbers) and reports bad UTF-8 without a position, while an error here must name its line, and the
byte offset of each line lets a later run seek straight to a window.

`raw_rows(file, fields, ...)` yields `Raw(pos, offset, values, error)` per physical row (`pos`: the line
number for JSONL/text, the record number for CSV/Parquet, 1-based); `record(raw, ...)` checks one row
and makes the `Record` that gets embedded, or raises `RowError` naming the file and line/row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from l2v.embed.inputs import InputFile
from l2v.errors import InputError, RowError

BLOCK_ROWS = 4096  # rows per pyarrow batch (Parquet) — bounded memory whatever the file size
CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Fields:
    """Where a row's text, id and instruction come from. `id_given`: --id-field was passed explicitly
    (every structured row must then have it); otherwise a file without an `id` field is numbered."""
    text: str = "text"
    id: str = "id"
    id_given: bool = False
    instruction_field: str | None = None
    instruction: str | None = None  # one instruction for every row

    def wanted(self) -> list[str]:
        names = [self.text, self.id]
        return names + ([self.instruction_field] if self.instruction_field else [])


class Raw(NamedTuple):
    pos: int  # 1-based line (jsonl, text) or record (csv, parquet)
    offset: int | None  # byte offset of the line (jsonl, text): where a resumed read can seek to
    values: dict | None  # field -> value (bytes for text fields read as binary)
    error: str | None  # the row could not be parsed at all


class Record(NamedTuple):
    id: int | str
    text: str
    instruction: str | None
    file: int  # index into the plan's inputs
    pos: int


def where(inp: InputFile, pos: int | None, rid=None) -> str:
    """'a.jsonl line 7', 'b.csv row 3 (id 'x')': a row named so a person can find it."""
    if not pos:  # a malformed CSV record: the parser gives no number
        return inp.name
    unit = "line" if inp.format in ("jsonl", "text") else "row"
    return f"{inp.name} {unit} {pos}" + (f" (id {rid!r})" if rid is not None else "")


class FileError(InputError):
    """A whole input file cannot be read (missing, corrupt, no such column)."""

    def __init__(self, inp: InputFile, reason: str, hint: str | None = None):
        super().__init__(f"{inp.name}: {reason}", hint=hint or "fix or remove the file, or pass --on-error skip")
        self.file = inp
        self._init = (inp, reason, hint)


# ---------------------------------------------------------------- line formats (jsonl, text)
def _lines(inp: InputFile, start_pos: int, offset: int | None) -> Iterator[tuple[int, int, bytes]]:
    try:
        fh = open(inp.path, "rb")
    except OSError as e:
        raise FileError(inp, f"cannot be read ({e.strerror})") from e
    with fh:
        at = 0
        if offset:
            fh.seek(offset)
            at = offset
        pos = start_pos
        for line in fh:
            yield pos, at, line.rstrip(b"\r\n") if line.endswith(b"\n") else line
            at += len(line)
            pos += 1


def _text_rows(inp, fields, start_pos, offset):
    for pos, at, line in _lines(inp, start_pos, offset):
        yield Raw(pos, at, {fields.text: line}, None)


def _jsonl_rows(inp, fields, start_pos, offset):
    for pos, at, line in _lines(inp, start_pos, offset):
        if not line.strip():
            continue  # a blank line holds no row (as in pyarrow's reader); line numbers stay exact
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield Raw(pos, at, None, f"not valid UTF-8 (byte 0x{line[e.start]:02x} at offset {e.start})")
            continue
        except json.JSONDecodeError as e:
            yield Raw(pos, at, None, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield Raw(pos, at, None, f"is a JSON {type(obj).__name__}, not an object")
            continue
        yield Raw(pos, at, obj, None)


# ---------------------------------------------------------------- pyarrow formats (csv, parquet)
def _text_type(t):
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return pa.large_binary()
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return pa.binary()
    return None


def _batch_rows(batch, names: list[str], first_pos: int, texts=()) -> Iterator[Raw]:
    """Rows of a pyarrow batch; the `texts` columns as bytes (decoded, and checked, one value at a time)."""
    cols = {}
    for name in names:
        col = batch.column(batch.schema.get_field_index(name))
        binary = _text_type(col.type) if name in texts else None
        cols[name] = (col.cast(binary) if binary is not None else col).to_pylist()
    for i in range(batch.num_rows):
        yield Raw(first_pos + i, None, {n: cols[n][i] for n in names if cols[n][i] is not None}, None)


def present(inp: InputFile, fields: Fields) -> list[str]:
    """The wanted fields that the file has (its schema or header); text must be one of them."""
    names = _schema_names(inp)
    if fields.text not in names:
        raise FileError(inp, f"has no column {fields.text!r} (it has {', '.join(names[:12])})",
                        hint="name the text column with --text-field")
    have = [n for n in fields.wanted() if n in names]
    if fields.id_given and fields.id not in have:
        raise FileError(inp, f"has no column {fields.id!r} (--id-field)")
    if fields.instruction_field and fields.instruction_field not in have:
        raise FileError(inp, f"has no column {fields.instruction_field!r} (--instruction-field)")
    return have


def _schema_names(inp: InputFile) -> list[str]:
    try:
        if inp.format == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(inp.path).schema_arrow.names)
        import pyarrow.csv as pc

        parse = pc.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip")
        return list(pc.open_csv(inp.path, read_options=pc.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                parse_options=parse).schema.names)
    except OSError as e:
        raise FileError(inp, f"cannot be read ({e.strerror or e})") from e
    except Exception as e:  # pyarrow's ArrowInvalid and friends: a corrupt or non-Parquet/CSV file
        raise FileError(inp, f"is not a readable {inp.format} file ({str(e).splitlines()[0][:200]})") from e


def _texts(fields: Fields) -> tuple:
    return (fields.text, fields.instruction_field)


def _parquet_rows(inp, fields, start_pos, offset):
    import pyarrow.parquet as pq

    names = present(inp, fields)
    pf = pq.ParquetFile(inp.path)
    groups, first = [], 1  # skip whole row groups before start_pos
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if not groups and first + n <= start_pos:
            first += n
            continue
        groups.append(g)
    if not groups:
        return
    pos = first
    try:
        for batch in pf.iter_batches(batch_size=BLOCK_ROWS, columns=names, row_groups=groups):
            for raw in _batch_rows(batch, names, pos, _texts(fields)):
                if raw.pos >= start_pos:
                    yield raw
            pos += batch.num_rows
    except OSError as e:
        raise FileError(inp, f"cannot be read after row {pos - 1} ({e})") from e
    except Exception as e:  # a corrupt page or row group: pyarrow's own exception types
        if isinstance(e, InputError):
            raise
        raise FileError(inp, f"is corrupt after row {pos - 1} ({str(e).splitlines()[0][:200]})") from e


def _csv_rows(inp, fields, start_pos, offset):
    import pyarrow as pa
    import pyarrow.csv as pc

    names = present(inp, fields)
    malformed: list[str] = []

    def handler(row):
        malformed.append(f"a malformed CSV record ({row.actual_columns} fields, expected {row.expected_columns}): "
                         f"{row.text[:80]!r}")
        return "skip"

    types = {n: pa.binary() for n in names}
    reader = pc.open_csv(inp.path, read_options=pc.ReadOptions(block_size=CSV_BLOCK_BYTES),
                         parse_options=pc.ParseOptions(newlines_in_values=True, invalid_row_handler=handler),
                         convert_options=pc.ConvertOptions(column_types=types, include_columns=names))
    pos = 1
    try:
        for batch in reader:
            if pos >= start_pos:  # the parser does not number them: pos 0, named by their text
                yield from (Raw(0, None, None, f"{m} (after row {pos - 1})") for m in malformed)
            malformed.clear()
            for raw in _batch_rows(batch, names, pos, names):
                if raw.pos >= start_pos:
                    yield raw
            pos += batch.num_rows
    except OSError as e:
        raise FileError(inp, f"cannot be read after row {pos - 1} ({e})") from e
    except Exception as e:
        if isinstance(e, InputError):
            raise
        raise FileError(inp, f"cannot be parsed after row {pos - 1} ({str(e).splitlines()[0][:200]})") from e
    yield from (Raw(0, None, None, f"{m} (after row {pos - 1})") for m in malformed)


READERS = {"text": _text_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows, "csv": _csv_rows}


def raw_rows(inp: InputFile, fields: Fields, start_pos: int = 1, offset: int | None = None) -> Iterator[Raw]:
    """Every physical row of `inp` from `start_pos` on (line formats seek to `offset` when given)."""
    return READERS[inp.format](inp, fields, start_pos, offset)


# ---------------------------------------------------------------- one row -> Record
def _string(value, what: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{what} is not valid UTF-8 (byte 0x{value[e.start]:02x} at offset {e.start})") from None
    if not isinstance(value, str):
        raise ValueError(f"{what} is a {type(value).__name__}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} holds a lone surrogate at offset {e.start}, which is not valid UTF-8") from None
    return value


def _id(value, what: str):
    if isinstance(value, (bytes, bytearray)):  # CSV ids are text
        value = _string(value, what)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} is a {type(value).__name__}; ids must be integers or strings")
    if isinstance(value, str) and not value:
        raise ValueError(f"{what} is empty")
    return value


ID_KINDS = {int: "integer", str: "string"}


def record(raw: Raw, fields: Fields, inp: InputFile, file: int, numbered: bool, base: int,
           id_kind: str | None) -> Record:
    """Check one row: parsed, an id of the corpus's kind, the text a non-empty UTF-8 string.
    `numbered`: this file's ids are row numbers (`base + pos`); `id_kind` 'integer'/'string' (None: any).
    The error names the file, the line/row and, when the row has one, its id."""
    rid = None
    try:
        if raw.error:
            raise ValueError(raw.error)
        v = raw.values
        if numbered:
            rid = base + raw.pos
        elif v.get(fields.id) is None:
            raise ValueError(f"has no field {fields.id!r}")
        else:
            rid = _id(v[fields.id], f"field {fields.id!r}")
        kind = ID_KINDS[type(rid)]
        if id_kind is not None and kind != id_kind:
            raise ValueError(f"the id is a {kind}, but the ids before it are {id_kind}s"
                             + (" (row numbers)" if numbered else ""))
        what = "the line" if inp.format == "text" else f"field {fields.text!r}"
        if fields.text not in v:
            raise ValueError(f"has no field {fields.text!r}")
        text = _string(v[fields.text], what)
        if not text.strip():
            raise ValueError(f"{what} is empty")
        instr = fields.instruction
        if fields.instruction_field:
            if fields.instruction_field not in v:
                raise ValueError(f"has no field {fields.instruction_field!r}")
            value = v[fields.instruction_field]
            instr = None if value is None else _string(value, f"field {fields.instruction_field!r}") or None
    except ValueError as e:
        raise RowError(where(inp, raw.pos, None if numbered else rid), str(e)) from None
    return Record(rid, text, instr, file, raw.pos)
