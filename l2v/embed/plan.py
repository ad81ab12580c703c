"""The plan pass: one streaming read of every input before anything is embedded.

It checks every row (so `--on-error fail` stops before any work, with the file and line/row), counts
the rows (the progress bar's total and ETA), finds duplicate ids, and cuts the stream of good rows into
windows of `window` rows, remembering where each window starts (file, line/row, byte offset), so that
a resumed run or a Ray read task can start reading at any window. Windows are what make a run exact:
the same rows always form the same windows, hence the same batches, hence bit-identical vectors.

Duplicate ids without holding the ids: each id's 64-bit hash goes into a sorted numpy array (8 bytes
per row, the one thing here that grows with the corpus). A hash seen twice is only a candidate; the
pass is then run again with those hashes checked exactly against the ids themselves (a small dict),
which names the first occurrence and never mistakes a hash collision for a duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Iterator

import numpy as np

from l2v.embed.inputs import InputFile
from l2v.embed.reader import Fields, FileError, Raw, Record, raw_rows, record, where
from l2v.errors import RowError

CHUNK = 65536  # ids hashed and checked per numpy step
SAMPLE = 50  # skipped rows named in the manifest (all are counted)


@dataclass
class Source:
    """An input file as the plan read it."""
    file: InputFile
    numbered: bool = False  # ids are row numbers: base + line/row
    base: int = 0  # rows of the files before it (row-number ids continue across files)
    positions: int = 0  # lines (jsonl, text) or records (csv, parquet) in it
    rows: int = 0  # good rows
    skipped: str | None = None  # why the whole file is left out (--on-error skip)


@dataclass(frozen=True)
class Start:
    file: int
    pos: int
    offset: int | None


@dataclass
class Plan:
    sources: list[Source]
    fields: Fields
    window: int
    rows: int = 0
    starts: list[Start] = field(default_factory=list)
    id_kind: str | None = None
    duplicates: frozenset = frozenset()  # (file, pos) of the later occurrences of an id (skipped)
    skipped: int = 0
    skipped_rows: list[dict] = field(default_factory=list)  # the first SAMPLE, with file, line/row, reason

    @property
    def windows(self) -> int:
        return len(self.starts)

    def window_rows(self, k: int) -> int:
        return min(self.window, self.rows - k * self.window)


class _NewHits(Exception):
    def __init__(self, hashes):
        self.hashes = set(hashes)


def _is_numbered(inp: InputFile, fields: Fields, first: Raw | None) -> bool:
    if inp.format == "text":
        return True
    if fields.id_given:
        return False
    if inp.format == "jsonl":
        return first is not None and first.values is not None and fields.id not in first.values
    from l2v.embed.reader import present

    return fields.id not in present(inp, fields)


class _Scan:
    """One pass over the inputs. `hits`: id hashes to check exactly (found by an earlier pass)."""

    def __init__(self, files, fields: Fields, window: int, skip: bool, hits: set, progress=None):
        self.files, self.fields, self.window, self.skip, self.hits = files, fields, window, skip, hits
        self.progress = progress
        self.plan = Plan([], fields, window)
        self.seen = np.empty(0, dtype=np.int64)  # sorted hashes of the files read so far
        self.exact: dict = {}  # id -> where, for ids whose hash is in `hits`
        self.new_hits: set = set()
        self.duplicates: set = set()

    def run(self) -> Plan:
        base = 0
        for i, inp in enumerate(self.files):
            src = Source(inp, base=base)
            try:
                self._file(i, src)
            except FileError as e:
                if not self.skip:
                    raise
                src.skipped, src.rows = str(e), 0
            self.plan.sources.append(src)
            base += src.positions
        if self.new_hits:
            raise _NewHits(self.new_hits)
        self.plan.duplicates = frozenset(self.duplicates)
        return self.plan

    def _file(self, i: int, src: Source) -> None:
        """Read one file; its rows, windows and ids are committed only if the whole file reads."""
        plan, inp = self.plan, src.file
        rows0, starts0, skipped0, samples0 = plan.rows, len(plan.starts), plan.skipped, len(plan.skipped_rows)
        exact_added, dups_added = [], []
        pending, chunk = np.empty(0, dtype=np.int64), []
        try:
            stream = raw_rows(inp, self.fields)
            head = _peek(stream)
            src.numbered = _is_numbered(inp, self.fields, head[-1] if head else None)
            for raw in _chain(head, stream):
                src.positions = max(src.positions, raw.pos)
                try:
                    rec = record(raw, self.fields, inp, i, src.numbered, src.base, plan.id_kind)
                except RowError as e:
                    pending = self._flush(chunk, pending)  # an earlier duplicate is reported first
                    self._bad(e, inp, raw)
                    continue
                h = hash(rec.id)
                if h in self.hits:
                    first_at = self.exact.get(rec.id)
                    if first_at is not None:
                        self._bad(RowError(where(inp, raw.pos, rec.id), f"duplicate id {rec.id!r} (first at {first_at})"),
                                  inp, raw)
                        self.duplicates.add((i, raw.pos))
                        dups_added.append((i, raw.pos))
                        continue
                    self.exact[rec.id] = where(inp, raw.pos)
                    exact_added.append(rec.id)
                else:
                    chunk.append(h)
                    if len(chunk) >= CHUNK:
                        pending = self._flush(chunk, pending)
                if plan.id_kind is None:
                    plan.id_kind = "integer" if isinstance(rec.id, int) else "string"
                if plan.rows % self.window == 0:
                    plan.starts.append(Start(i, raw.pos, raw.offset))
                plan.rows += 1
                src.rows += 1
                if self.progress is not None and plan.rows % 4096 == 0:
                    self.progress.update(4096)
            pending = self._flush(chunk, pending)
        except FileError:
            plan.rows, plan.skipped = rows0, skipped0
            del plan.starts[starts0:], plan.skipped_rows[samples0:]
            for key in exact_added:
                self.exact.pop(key, None)
            self.duplicates.difference_update(dups_added)
            raise
        self.seen = np.union1d(self.seen, pending)

    def _flush(self, chunk: list, pending: np.ndarray) -> np.ndarray:
        """Check the buffered hashes against earlier files, this file, and each other."""
        if not chunk:
            return pending
        h = np.asarray(chunk, dtype=np.int64)
        chunk.clear()
        values, counts = np.unique(h, return_counts=True)
        hits = set(values[counts > 1].tolist())
        for known in (self.seen, pending):
            if known.size:
                idx = np.minimum(np.searchsorted(known, values), known.size - 1)
                hits |= set(values[known[idx] == values].tolist())
        if hits:
            self.new_hits |= hits
            if not self.skip:
                raise _NewHits(self.new_hits)  # fail fast: the exact pass names the row
        return np.union1d(pending, values)

    def _bad(self, err: RowError, inp: InputFile, raw: Raw) -> None:
        if not self.skip:
            raise err
        self.plan.skipped += 1
        if len(self.plan.skipped_rows) < SAMPLE:
            self.plan.skipped_rows.append({"at": err.where, "reason": err.reason})


def _peek(stream) -> list[Raw]:
    """The rows up to the first that parsed (whose fields decide whether the file has ids)."""
    head = []
    for raw in stream:
        head.append(raw)
        if raw.values is not None:
            break
    return head


def _chain(head, rest):
    yield from head
    yield from rest


def make_plan(files: list[InputFile], fields: Fields, window: int, skip: bool, progress=None) -> Plan:
    """Read every input once (twice when an id hash repeats) and return the plan; raises the first
    `RowError` / `FileError` unless `skip`."""
    hits: set = set()
    while True:
        if progress is not None:
            progress.reset()
        try:
            plan = _Scan(files, fields, window, skip, hits, progress).run()
        except _NewHits as e:
            hits |= e.hashes
            continue
        skipped_files = sum(s.skipped is not None for s in plan.sources)
        if plan.rows == 0:
            from l2v.errors import InputError

            raise InputError(f"the inputs hold no row to embed ({plan.skipped} bad rows, {skipped_files} "
                             "unreadable files skipped)" if plan.skipped or skipped_files else
                             "the inputs hold no row to embed", hint="check the files and --text-field")
        return plan


def records_from(plan: Plan, start: Start):
    """The good rows from `start` on, exactly the ones the plan counted (bad rows and repeated ids out)."""
    for i in range(start.file, len(plan.sources)):
        src = plan.sources[i]
        if src.skipped is not None:
            continue
        first = i == start.file
        stream = raw_rows(src.file, plan.fields, start.pos if first else 1, start.offset if first else None)
        for raw in stream:
            try:
                rec = record(raw, plan.fields, src.file, i, src.numbered, src.base, plan.id_kind)
            except RowError:
                continue
            if (i, raw.pos) in plan.duplicates:
                continue
            yield rec


def windows(plan: Plan, pending) -> Iterator[tuple[int, list[Record]]]:
    """(k, the rows of window k) for each k in `pending` (ascending), seeking to a window's start only
    when the previous one was not read just before it."""
    stream, expect = None, None
    for k in sorted(pending):
        if k != expect:
            stream = records_from(plan, plan.starts[k])
        rows = list(islice(stream, plan.window_rows(k)))
        if len(rows) != plan.window_rows(k):
            from l2v.errors import JobChangedError

            raise JobChangedError(f"window {k} has {len(rows)} rows, the plan counted {plan.window_rows(k)}",
                                  hint="an input changed while the job ran; rerun with --restart")
        yield k, rows
        expect = k + 1
