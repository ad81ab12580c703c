"""`quantize_artifact`: add quantized variants to an existing artifact, gated on recall, atomically.

New files are written to a temporary directory inside the artifact, each variant is measured against
the artifact's fp32 graph on the eval set and gated; only when every requested variant passes are the
files moved in and `l2v.json` replaced (write to a temp file, then `os.replace`). A refused variant, or
any error, leaves the artifact exactly as it was.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from l2v.errors import ArtifactError, InputError, ValidationError
from l2v.quantize.config import QuantConfig, parse_method
from l2v.quantize.registry import get

MIN_EVAL_TEXTS = 12
MIN_CALIB_TEXTS = 8
EVAL_MAX_LENGTH = 128
SPEED_TOKENS = 64


class RecallGateError(ValidationError):
    """A variant's neighbour recall against fp32 is below --min-recall; nothing was written."""


def _progress(enabled: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if enabled:
            print(f"[quantize] {msg} (t={time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    return say


def _write_manifest(root: Path, manifest: dict) -> None:
    from l2v.export.artifact import MANIFEST

    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=root)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, root / MANIFEST)


def quantize_artifact(artifact_dir, methods, calib=None, eval=None, min_recall: float | None = None,
                      overwrite: bool = False, speed: bool = True, progress: bool = False,
                      eval_max_length: int = EVAL_MAX_LENGTH) -> dict:
    """Add one variant per entry of `methods` ("int8-smooth", "w4:block_size=64", or QuantConfig objects).

    calib / eval: None (built-in real text), a file (one text per line or JSONL "text"), or a list of str.
    min_recall: refuse (RecallGateError, exit 3, nothing written) any variant whose recall@10 against
    fp32 on the eval set is below it. Returns {variant name: manifest entry}.
    """
    from l2v.export.artifact import read_manifest
    from l2v.quantize.context import Context
    from l2v.quantize.gate import Gate
    from l2v.quantize.texts import default_calibration_texts, default_eval_texts, resolve_texts

    if min_recall is not None and not (isinstance(min_recall, (int, float)) and 0.0 < min_recall <= 1.0):
        raise InputError(f"--min-recall {min_recall!r} must be a number in (0, 1]")
    if isinstance(methods, (str, QuantConfig)) or not hasattr(methods, "__iter__"):
        methods = [methods]
    configs = [parse_method(m) for m in methods]
    if not configs:
        raise InputError("no quantization method given", hint="pass --quant METHOD (e.g. int8-smooth, w4)")
    root = Path(artifact_dir).expanduser().resolve()
    manifest = read_manifest(root)
    if "fp32" not in manifest.get("variants", {}):
        raise ArtifactError(f"artifact {str(root)!r} has no fp32 variant to quantize from")
    if not manifest.get("adapters_merged", True):  # calibration and torch variants assume merged weights
        raise InputError("this artifact keeps its last adapter unmerged; "
                         "quantize a merged export (drop --keep-last-adapter-unmerged)")
    names = [c.variant for c in configs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"variant name(s) {dup} requested twice", hint="give one a name: --quant 'w4:name=w4-b64'")
    existing = set(manifest["variants"]) | set(manifest.get("torch_variants") or {})
    clash = [n for n in names if n in existing]
    if clash and not overwrite:
        raise ArtifactError(f"variant(s) {clash} already exist in {str(root)!r}",
                            hint="pass overwrite=True (--overwrite) to replace them")
    if "fp32" in names:
        raise InputError("a quantized variant cannot be named 'fp32'")
    say = _progress(progress)
    calib_texts, calib_rec = resolve_texts(calib, default_calibration_texts, "calib", MIN_CALIB_TEXTS)
    eval_texts, eval_rec = resolve_texts(eval, default_eval_texts, "eval", MIN_EVAL_TEXTS)
    ctx = Context(root, manifest, calib_texts, say)
    gate = Gate(ctx, eval_texts, eval_max_length, speed, SPEED_TOKENS)
    ctx.gate, ctx.min_recall = gate, min_recall  # for searching methods (auto)
    tmp = Path(tempfile.mkdtemp(prefix=".quant-", dir=root))
    try:
        entries, refused = {}, []
        for cfg in configs:
            method = get(cfg.method)
            say(f"building {cfg.variant} ({cfg.method})")
            entry = method.build(ctx, cfg, tmp)
            say(f"measuring {cfg.variant} against fp32 on {len(eval_texts)} eval texts")
            entry["backend"] = method.backend
            entry["quant"] = cfg.to_dict()
            entry["calibration"] = calib_rec if method.calibrates else None
            entry["gate"] = {**gate.measure(entry, tmp), "eval": eval_rec, "eval_max_length": eval_max_length,
                             "min_recall": min_recall}
            entries[cfg.variant] = entry
            r = entry["gate"]["recall@10"]
            if min_recall is not None and r < min_recall:
                refused.append(f"{cfg.variant} recall@10 {r:.4f} < {min_recall}"
                               f" (mean cosine {entry['gate']['mean_cosine']:.4f})")
        if refused:
            raise RecallGateError(f"refused {'; '.join(refused)} on {len(eval_texts)} eval texts; nothing written",
                                  hint="lower --min-recall, or try int8-smooth / w8 / --quant auto")
        _commit(root, manifest, entries, tmp, clash)
        say(f"added {', '.join(entries)} to {root}")
        return entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _commit(root: Path, manifest: dict, entries: dict, tmp: Path, replaced: list) -> None:
    for name in replaced:  # --overwrite: drop the old entry's files first
        old = manifest["variants"].pop(name, None) or (manifest.get("torch_variants") or {}).pop(name, None)
        if old and old.get("file"):
            for p in (root / old["file"], root / f"{old['file']}.data"):
                if p.exists():
                    p.unlink()
    for name, entry in entries.items():
        if entry.get("file"):
            for suffix in ("", ".data"):
                src = tmp / f"{entry['file']}{suffix}"
                if src.exists():
                    os.replace(src, root / src.name)
        key = "variants" if entry["backend"] == "onnx" else "torch_variants"
        manifest.setdefault(key, {})[name] = entry
    _write_manifest(root, manifest)
