"""Long-format result rows: one measurement per row, each carrying its full context.

A row: metric, unit, value, backend, precision, batch, seq, model, machine, cpu, gpu, versions,
timestamp, git_commit, plus metric-specific extras (e.g. `n`, `task`, `reason`). A skipped measurement
is a row with metric "skipped", value None and a `reason`.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

CONTEXT_KEYS = ("machine", "cpu", "gpu", "device", "threads", "versions", "git_commit")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Rows:
    def __init__(self, machine: dict):
        self.context = {k: machine.get(k) for k in CONTEXT_KEYS}
        self.rows: list[dict] = []
        self.model: str | None = None
        self.artifact: str | None = None  # the artifact directory: two exports of one model differ here

    def add(self, metric: str, value, unit: str = "", *, backend: str | None = None,
            precision: str | None = None, batch: int | None = None, seq: int | None = None, **extra) -> dict:
        if isinstance(value, float) and not math.isfinite(value):
            extra.setdefault("note", f"non-finite value {value}")
            value = None
        row = {"metric": metric, "unit": unit, "value": value, "backend": backend, "precision": precision,
               "batch": batch, "seq": seq, "model": self.model, "artifact": self.artifact, **extra, **self.context,
               "timestamp": now_iso()}
        self.rows.append(row)
        return row

    def skip(self, what: str, reason: str, **where) -> dict:
        return self.add("skipped", None, "", what=what, reason=reason, **where)


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def select(rows: list[dict], metric: str, **where) -> list[dict]:
    return [r for r in rows if r["metric"] == metric and all(r.get(k) == v for k, v in where.items())]


def value(rows: list[dict], metric: str, **where):
    """The value of the single row matching, or None."""
    hits = select(rows, metric, **where)
    return hits[0]["value"] if hits else None
