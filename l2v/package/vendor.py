"""Copy l2v's own preprocessing (and, for PyTorch, its masks and pooling) into a package, verbatim.

The Triton python backend and a sentence-transformers `trust_remote_code` module run where l2v is not
installed; they need exactly the runtime's preprocessing, not a re-implementation. So the packagers copy
the source files from this l2v and rewrite their absolute `l2v.` imports into relative ones. An `l2v`
import the copy would not hold is an error at packaging time, never at serving time.
"""
from __future__ import annotations

import re
from pathlib import Path

from l2v.errors import L2VError

TEXT = {"errors": "errors.py", "spec": "text/spec.py", "batch": "text/batch.py", "preprocess": "text/preprocess.py"}
TORCH = {"masks": "model/masks.py", "pooling": "model/pooling.py"}
_IMPORT = re.compile(r"^(\s*)from l2v\.(?:\w+\.)*?(\w+) import", re.M)
_ANY_L2V = re.compile(r"^\s*(from|import)\s+l2v\b", re.M)


def _l2v_root() -> Path:
    import l2v

    return Path(l2v.__file__).resolve().parent


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("l2v-export")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


def vendored_sources(modules: dict[str, str], prefix: str = "") -> dict[str, str]:
    """{file name: source} for `modules` ({name: path under l2v/}); imports between them become
    `from .<prefix><name> import ...`."""
    root, version = _l2v_root(), _version()
    out = {}
    for name, rel in modules.items():
        src = (root / rel).read_text(encoding="utf-8")

        def local(m: re.Match) -> str:
            if m.group(2) not in modules:
                raise L2VError(f"l2v/{rel} imports l2v.{m.group(2)}, which the vendored copy does not hold",
                               hint="internal: extend l2v.package.vendor")
            return f"{m.group(1)}from .{prefix}{m.group(2)} import"

        src = _IMPORT.sub(local, src)
        if _ANY_L2V.search(src):
            raise L2VError(f"l2v/{rel} imports l2v in a form the packager cannot rewrite",
                           hint="internal: extend l2v.package.vendor")
        out[f"{prefix}{name}.py"] = f"# copied from l2v-export {version} (l2v/{rel}) by l2v-package; do not edit\n" + src
    return out


def write_text_package(dest: Path, package: str = "l2v_text") -> Path:
    """`dest/<package>/`: TextSpec, Preprocessor, Batch and the errors, importable as one package."""
    pkg = Path(dest) / package
    pkg.mkdir(parents=True, exist_ok=True)
    for name, src in vendored_sources(TEXT).items():
        (pkg / name).write_text(src, encoding="utf-8")
    (pkg / "__init__.py").write_text(
        f'"""l2v\'s text preprocessing, copied from l2v-export {_version()} by l2v-package (do not edit)."""\n'
        "from .batch import Batch\nfrom .errors import InputError, L2VError\n"
        "from .preprocess import Preprocessor, check_items\nfrom .spec import TextSpec\n", encoding="utf-8")
    return pkg


def write_flat_modules(dest: Path) -> list[str]:
    """`dest/l2v_<name>.py` single-file modules with relative imports: the layout Hugging Face's
    dynamic-module loader (`trust_remote_code`) copies along with the module that imports them."""
    names = []
    for name, src in vendored_sources({**TEXT, **TORCH}, prefix="l2v_").items():
        (Path(dest) / name).write_text(src, encoding="utf-8")
        names.append(name)
    return names
