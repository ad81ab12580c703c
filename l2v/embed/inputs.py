"""INPUT arguments -> an ordered list of input files with their format.

Each argument is a file, a directory (every file with a known suffix below it, sorted, hidden files and
the output directory left out) or a glob (sorted). The order of the arguments is kept: it is the order
of the rows, of the windows and of the row numbers.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from l2v.errors import InputError

FORMATS = ("jsonl", "parquet", "csv", "text")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
            ".txt": "text", ".text": "text"}


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute
    format: str  # one of FORMATS
    size: int

    @property
    def name(self) -> str:
        return Path(self.path).name


def format_of(path: Path, forced: str | None) -> str | None:
    if forced and forced != "auto":
        return forced
    return SUFFIXES.get(path.suffix.lower())


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _inside(path: Path, other: Path | None) -> bool:
    return other is not None and (path == other or other in path.parents)


def _from_dir(root: Path, forced: str | None, out: Path | None) -> list[Path]:
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and not _hidden(p, root) and not _inside(p, out)
             and format_of(p, forced)]
    if not found:
        raise InputError(f"directory {str(root)!r} holds no input file",
                         hint=f"known suffixes: {', '.join(SUFFIXES)} (or pass --format)")
    return found


def expand(args, forced: str | None = None, out=None) -> list[InputFile]:
    """The files named by `args`, in order; each must exist, be readable and have a known format."""
    if forced not in (None, "auto", *FORMATS):
        raise InputError(f"--format {forced!r} is not one of auto, {', '.join(FORMATS)}")
    out = Path(out).expanduser().resolve() if out is not None else None
    if not args:
        raise InputError("no INPUT given", hint="pass files, directories or globs (JSONL, Parquet, CSV, text)")
    paths: list[Path] = []
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            paths += _from_dir(p.resolve(), forced, out)
        elif p.exists():
            paths.append(p.resolve())
        elif glob.has_magic(str(arg)):
            hits = sorted(Path(h).resolve() for h in glob.glob(os.path.expanduser(str(arg)), recursive=True))
            hits = [h for h in hits if h.is_file() and not _inside(h, out)]
            if not hits:
                raise InputError(f"INPUT glob {arg!r} matches no file")
            paths += hits
        else:
            raise InputError(f"INPUT {arg!r} does not exist")
    files, seen = [], set()
    for p in paths:
        if p in seen:
            raise InputError(f"input {str(p)!r} is named twice", hint="each file may appear once among the INPUTs")
        seen.add(p)
        fmt = format_of(p, forced)
        if fmt is None:
            raise InputError(f"cannot tell the format of {str(p)!r} from its suffix {p.suffix!r}",
                             hint=f"rename it ({', '.join(SUFFIXES)}) or pass --format {'|'.join(FORMATS)}")
        files.append(InputFile(str(p), fmt, p.stat().st_size))
    return files
