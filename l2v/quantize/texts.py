"""Real text for calibration and for the recall gate, available offline on every machine.

Default calibration and default evaluation texts are the docstrings of two *disjoint* sets of
Python standard-library modules (English prose written by people, present wherever Python is).
A user file (`--calib FILE`, `--eval FILE`: one text per line, or JSONL with a "text" field) replaces
either. Never random tokens.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import warnings
from pathlib import Path

from l2v.errors import InputError

CALIB_MODULES = (
    "json", "os", "re", "collections", "itertools", "functools", "pathlib", "string", "textwrap", "datetime",
    "random", "statistics", "decimal", "heapq", "argparse", "logging", "shutil", "tempfile", "csv",
    "threading", "subprocess", "unittest", "difflib", "zipfile", "tarfile", "pickle", "enum", "typing",
    "dataclasses", "contextlib", "inspect", "ast", "sqlite3", "hashlib", "uuid", "io", "codecs", "queue",
)
EVAL_MODULES = (
    "asyncio", "email.message", "http.client", "urllib.request", "socket", "calendar", "fractions", "bisect",
    "copy", "abc", "tokenize", "base64", "hmac", "secrets", "time", "math", "operator", "locale", "gettext",
    "struct", "sched", "concurrent.futures", "multiprocessing", "signal", "glob", "fnmatch", "configparser",
    "mailbox", "mimetypes", "ipaddress", "optparse", "pprint", "weakref", "types", "numbers", "warnings",
    "traceback", "platform", "pkgutil", "timeit", "pdb", "shlex", "selectors", "ssl", "smtplib", "ftplib",
    "imaplib", "wave", "xml.dom.minidom", "xml.etree.ElementTree", "html.parser", "turtle", "lzma", "bz2",
    "zoneinfo", "graphlib", "plistlib", "cmd", "code", "getpass", "netrc", "poplib", "telnetlib", "uu",
)


def _first_paragraph(doc: str) -> str | None:
    para = " ".join(doc.split("\n\n")[0].split())
    # prose only: enough words, not a bare signature like "f(a, b) -> c"
    if len(para) < 60 or len(para.split()) < 8 or para.endswith(")"):
        return None
    return para


def _docstrings(module_name: str) -> list[str] | None:
    """The module's prose docstrings; None when this Python build lacks the module (e.g. no tkinter)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated modules (telnetlib, uu) warn on import
            mod = importlib.import_module(module_name)
    except ImportError:
        return None
    out = []
    objs = [mod]
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        objs.append(obj)
        if inspect.isclass(obj):
            objs += [m for n, m in sorted(vars(obj).items()) if not n.startswith("_") and callable(m)]
    for obj in objs:
        doc = inspect.getdoc(obj)
        para = _first_paragraph(doc) if doc else None
        if para:
            out.append(para)
    return out


MISSING: dict[str, list[str]] = {}  # built-in set -> the modules this Python lacks (recorded in the manifest)


def stdlib_texts(modules) -> list[str]:
    seen, out = set(), []
    missing = MISSING.setdefault(",".join(modules), [])
    for m in modules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # typing.io & co. warn when their docstrings are read
            docs = _docstrings(m)
        if docs is None:
            if m not in missing:
                missing.append(m)
            continue
        for t in docs:
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def default_calibration_texts() -> list[str]:
    return stdlib_texts(CALIB_MODULES)


def default_eval_texts() -> list[str]:
    calib = set(default_calibration_texts())
    return [t for t in stdlib_texts(EVAL_MODULES) if t not in calib]


def load_texts(path, what: str = "text") -> list[str]:
    """A user file: one text per line, or JSONL objects with a "text" field (via `l2v.eval.corpora`).
    A file that is not text (NUL bytes, or mostly control characters) is refused, not read as "texts"."""
    from l2v.eval.corpora import load_file

    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"--{what} {str(p)!r} is a directory", hint="pass a file: one text per line or JSONL")
    try:
        with p.open("rb") as fh:
            head = fh.read(1 << 16)
    except FileNotFoundError as e:
        raise InputError(f"--{what} file {str(p)!r} does not exist") from e
    except OSError as e:
        raise InputError(f"--{what} file {str(p)!r} cannot be read: {e.strerror}") from e
    controls = sum(b < 32 and b not in (9, 10, 13) for b in head)
    if b"\0" in head or controls > 0.01 * max(len(head), 1):
        raise InputError(f"--{what} file {str(p)!r} is not text ({controls} control bytes in its first "
                         f"{len(head)})", hint="pass UTF-8 text: one text per line, or JSONL with 'text'")
    return load_file(p).texts


def resolve_texts(spec, default, what: str, minimum: int) -> tuple[list[str], dict]:
    """`spec`: None (built-in default), a file path, or a list of strings. Returns texts + a manifest record."""
    if spec is None:
        texts, source = default(), f"builtin:stdlib-docstrings-{what}"
    elif isinstance(spec, (str, Path)):
        texts, source = load_texts(spec, what), str(spec)
    else:
        texts, source = [str(t) for t in spec], "inline"
    texts = [t for t in texts if t.strip()]
    if len(texts) < minimum:
        raise InputError(f"the {what} set has {len(texts)} texts; at least {minimum} are needed",
                         hint=f"pass a larger --{what} file (one text per line or JSONL with 'text')")
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    record = {"source": source, "texts": len(texts), "sha256_16": digest}
    if spec is None:
        modules = CALIB_MODULES if what == "calib" else EVAL_MODULES
        record["modules_missing_here"] = list(MISSING.get(",".join(modules), []))
    return texts, record
