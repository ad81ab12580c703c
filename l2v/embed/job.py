"""`embed_corpus(options)`: the whole job — check, plan, resume or start, run the windows (here or on
Ray), write the manifest.

Order: every option is checked and the artifact opened before anything is read; the plan pass reads
and checks every input (nothing is written if a row is bad under `--on-error fail`); only then is DIR
created, locked and compared with the job it already holds (a changed artifact, variant, input or
option is refused unless `--restart`); the missing windows run; `embed.json` is written last.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from l2v.errors import InputError, JobChangedError, OptionalDependencyError
from l2v.text.spec import check_max_length

ON_ERROR = ("fail", "skip")
DEVICES = ("cpu", "cuda")


@dataclass
class EmbedOptions:
    artifact: str
    inputs: list = field(default_factory=list)
    out: str = ""
    text_field: str = "text"
    id_field: str | None = None  # None: "id", with row numbers for files that have no such field
    instruction_field: str | None = None
    instruction: str | None = None
    prompt_name: str | None = None
    variant: str | None = None
    max_batch_tokens: int = 8192
    window: int = 1024
    output_dtype: str = "float32"
    normalize: bool = False
    on_error: str = "fail"
    restart: bool = False
    format: str | None = None
    ray: bool = False
    ray_address: str | None = None
    workers: int = 1
    threads: int | None = None
    device: str = "cpu"
    max_length: int | None = None  # tokens per text (None: the artifact's max_length; never more)
    progress: bool = True
    ray_init: dict = field(default_factory=dict)  # extra ray.init arguments for a local cluster

    def check(self) -> None:
        from l2v.embed.quantize import check_dtype

        def positive(name, value):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} {value!r} must be a positive integer")

        for name in ("max_batch_tokens", "window", "workers"):
            positive(name, getattr(self, name))
        if self.threads is not None:
            positive("threads", self.threads)
        check_max_length(self.max_length, "--max-length")  # the one check l2v.load makes, before the corpus is read
        check_dtype(self.output_dtype)
        if self.on_error not in ON_ERROR:
            raise InputError(f"--on-error {self.on_error!r} is not one of {', '.join(ON_ERROR)}")
        if self.device not in DEVICES:
            raise InputError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.instruction is not None and self.instruction_field is not None:
            raise InputError("--instruction and --instruction-field exclude each other",
                             hint="one instruction for every row, or one per row from a field")
        if self.prompt_name is not None and (self.instruction is not None or self.instruction_field is not None):
            raise InputError("--prompt-name and an instruction exclude each other",
                             hint="a prompt is the artifact's own instruction text; pass one or the other")
        if self.workers > 1 and not self.ray:
            raise InputError(f"--workers {self.workers} needs --ray",
                             hint="--workers sets the number of Ray encoder actors; one process already uses "
                                  "every core through ONNX Runtime's threads")
        if not self.out:
            raise InputError("--out DIR is required")

    @property
    def fields(self):
        from l2v.embed.reader import Fields

        return Fields(self.text_field, self.id_field or "id", self.id_field is not None, self.instruction_field,
                      self.instruction)


def _need(module: str, package: str, extra: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise OptionalDependencyError(package, extra, purpose) from e


# ---------------------------------------------------------------- fingerprint: what makes a job the same
def _artifact_facts(opts: EmbedOptions):
    from l2v.artifact import MANIFEST, open_artifact
    from l2v.fileio import sha256_file
    from l2v.runtime.encoder import choose_variant

    art = open_artifact(opts.artifact)
    name = choose_variant(art.manifest, None, opts.variant)
    v = art.variant(name)
    art.check(v)
    main = v.main
    digest = main.sha256 if main is not None and main.sha256 else sha256_file(art.path(main.path))
    facts = {"artifact": {"manifest_sha256": sha256_file(art.root / MANIFEST)},
             "variant": {"name": name, "kind": v.kind, "dtype": v.dtype, "sha256": digest}}
    return art, name, facts


def _options_facts(opts: EmbedOptions, prompt: str | None) -> dict:
    import l2v

    keep = ("text_field", "id_field", "instruction_field", "instruction", "prompt_name", "max_batch_tokens",
            "window", "output_dtype", "normalize", "on_error", "format")
    facts = {**{k: getattr(opts, k) for k in keep}, "prompt": prompt, "l2v": l2v.__version__}
    if opts.max_length is not None:  # only when set, so jobs fingerprinted before the option resume as before
        facts["max_length"] = opts.max_length
    return facts


def _input_facts(files, hashes: dict | None = None) -> list[dict]:
    return [{"path": f.path, "format": f.format, "size": f.size,
             **({"sha256": hashes[f.path]} if hashes else {})} for f in files]


def differences(old: dict, new: dict) -> list[str]:
    """What changed between two fingerprints, in words (inputs compared by sha256 only when both have it)."""
    out = []
    if old.get("artifact") != new.get("artifact"):
        out.append("the artifact changed (its l2v.json differs)")
    ov, nv = old.get("variant", {}), new.get("variant", {})
    if ov.get("name") != nv.get("name"):
        out.append(f"the variant changed ({ov.get('name')} -> {nv.get('name')})")
    elif ov != nv:
        out.append(f"variant {nv.get('name')}'s files changed (sha256 {str(ov.get('sha256'))[:12]}... -> "
                   f"{str(nv.get('sha256'))[:12]}...)")
    oi, ni = old.get("inputs", []), new.get("inputs", [])
    if [i["path"] for i in oi] != [i["path"] for i in ni]:
        out.append(f"the inputs changed ({len(oi)} files -> {len(ni)} files, or another order)")
    else:
        for a, b in zip(oi, ni):
            name = Path(b["path"]).name
            if a["size"] != b["size"]:
                out.append(f"input {name} changed (size {a['size']:,} -> {b['size']:,} bytes)")
            elif "sha256" in a and "sha256" in b and a["sha256"] != b["sha256"]:
                out.append(f"input {name} changed (same size, different sha256)")
    oo, no = old.get("options", {}), new.get("options", {})
    for k in sorted(set(oo) | set(no)):
        if oo.get(k) != no.get(k):
            out.append(f"{'l2v version' if k == 'l2v' else '--' + k.replace('_', '-')} changed "
                       f"({oo.get(k)!r} -> {no.get(k)!r})")
    return out


def _refuse(out: Path, diffs: list[str], parts: int) -> JobChangedError:
    return JobChangedError(f"{str(out)!r} holds another job: {'; '.join(diffs)}",
                           hint=f"rerun with --restart to discard its {parts} completed parts and start over, "
                                "or choose another --out")


def _sha256s(files) -> dict:
    from l2v.fileio import sha256_file

    return {f.path: sha256_file(f.path) for f in files}


# ---------------------------------------------------------------- the job
def embed_corpus(opts: EmbedOptions, log=print) -> dict:
    """Run (or resume) the job; returns the manifest."""
    from l2v.embed import parts
    from l2v.embed.inputs import expand
    from l2v.embed.plan import make_plan
    from l2v.embed.progress import Progress
    from l2v.embed.prompts import resolve_prompt

    opts.check()
    _need("pyarrow", "pyarrow", "embed", "l2v-embed (Parquet output)")
    if opts.ray:
        _need("ray.data", "ray[data]", "ray", "l2v-embed --ray")
    art, variant, facts = _artifact_facts(opts)
    prompt = resolve_prompt(art.manifest, opts.prompt_name)
    out = Path(opts.out).expanduser().resolve()
    files = expand(opts.inputs, opts.format, out)
    fp = {**facts, "inputs": _input_facts(files), "options": _options_facts(opts, prompt)}
    parts.check_out_dir(out)
    old = parts.read_state(out) if out.is_dir() else None
    if old is not None and not opts.restart:  # the cheap check first: before reading the corpus
        diffs = differences(old["fingerprint"], fp)
        if diffs:
            raise _refuse(out, diffs, sum(1 for p in out.iterdir() if parts.PART_RE.match(p.name)))

    reading = Progress(None, enabled=opts.progress, desc="read", unit="row")
    try:
        plan = make_plan(files, opts.fields, opts.window, opts.on_error == "skip", reading.bar)
    finally:
        reading.close()
    fp["inputs"] = _input_facts(files, _sha256s(files))
    job = parts.job_id(fp)

    out.mkdir(parents=True, exist_ok=True)
    with parts.Lock(out):
        if opts.restart:
            parts.clear(out)
        old = parts.read_state(out)
        if old is not None and old.get("job") != job:
            raise _refuse(out, differences(old["fingerprint"], fp) or ["its fingerprint differs"],
                          sum(1 for p in out.iterdir() if parts.PART_RE.match(p.name)))
        if old is None:
            parts.write_state(out, fp)
        parts.remove_temporaries(out)
        done = parts.done_parts(out, job, warn=log)
        if (out / parts.MANIFEST).is_file() and len(done) == plan.windows:
            manifest = json.loads((out / parts.MANIFEST).read_text(encoding="utf-8"))
            log(f"already complete: {manifest['rows']:,} rows in {len(done)} parts in {out}")
            return manifest
        (out / parts.MANIFEST).unlink(missing_ok=True)
        manifest = _run(opts, art, variant, facts, fp, plan, job, out, done, prompt, log)
        parts.write_manifest(out, manifest)
    return manifest


def _run(opts, art, variant, facts, fp, plan, job, out, done, prompt, log) -> dict:
    from l2v.embed import parts
    from l2v.embed.progress import Progress, summary
    from l2v.embed.work import Work

    dim = int(art.manifest.graph.dim)
    ranges = done.get(0, {}).get("int8_ranges")
    work = Work(str(art.root), variant, plan, str(out), job, opts.output_dtype, dim, opts.max_batch_tokens,
                prompt, True if opts.normalize else None, opts.on_error == "skip", opts.device, opts.threads,
                tuple(map(tuple, ranges)) if ranges else None, opts.max_length)
    pending = [k for k in range(plan.windows) if k not in done]
    views = art.preprocessor().views if pending else 1
    kept_before = sum(m["rows"] + len(m["skipped"]) for m in done.values())
    progress = Progress(plan.rows, kept_before, opts.progress)
    t0 = time.monotonic()
    try:
        if opts.ray:
            from l2v.embed.raydata import run_on_ray

            run_on_ray(work, pending, progress, opts)
        else:
            run_local(work, pending, progress)
    finally:
        progress.close()
    seconds = time.monotonic() - t0
    done = parts.done_parts(out, job, warn=log)
    missing = [k for k in range(plan.windows) if k not in done]
    if missing:
        raise JobChangedError(f"{len(missing)} windows have no part after the run (first: {missing[0]})",
                              hint="rerun the same command to finish them")
    texts = sum(done[k]["rows"] for k in pending)
    tokens = sum(done[k]["tokens"] for k in pending)
    manifest = _manifest(opts, art, facts, fp, plan, job, done, prompt, views,
                         {"executor": "ray" if opts.ray else "local", "workers": opts.workers,
                          "seconds": round(seconds, 3), "texts": texts, "tokens": tokens,
                          "texts_per_s": round(texts / max(seconds, 1e-9), 2),
                          "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
                          "windows_run": len(pending), "windows_kept": plan.windows - len(pending),
                          "cpus": os.cpu_count()})
    log(summary(texts, tokens, seconds, manifest["skipped"], manifest["rows"], len(done), out,
                kept_before))
    return manifest


def run_local(work, pending, progress) -> None:
    """The single-process executor: windows in order, one encoder (all cores through ONNX Runtime)."""
    from l2v.embed.plan import windows
    from l2v.embed.work import embed_window, write_window

    if not pending:
        return
    enc = work.open_encoder()
    try:
        for k, rows in windows(work.plan, pending):
            ids, stored, meta = embed_window(work, enc, k, rows, progress.update)
            if meta.get("int8_ranges") is not None:
                work = dataclasses.replace(work, ranges=tuple(map(tuple, meta["int8_ranges"])))
            write_window(work, k, ids, stored, meta)
            progress.update(len(meta["skipped"]), 0)
    finally:
        enc.close()


def _manifest(opts, art, facts, fp, plan, job, done, prompt, views, run) -> dict:
    import l2v
    from l2v.embed import parts
    from l2v.embed.quantize import width

    m = art.manifest
    order = sorted(done)
    skipped_rows = list(plan.skipped_rows)
    for k in order:
        skipped_rows += done[k]["skipped"]
    skipped = plan.skipped + sum(len(done[k]["skipped"]) for k in order)
    rows = [s.rows for s in plan.sources]
    versions = {"l2v": l2v.__version__}
    for mod in ("pyarrow", "onnxruntime", "ray"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    out = {
        "format": "l2v-embeddings", "version": 1, "job": job,
        "artifact": {"path": str(art.root), **facts["artifact"], "architecture": m.model.architecture,
                     "source": m.source.get("path") or m.source.get("id")},
        "variant": facts["variant"],
        "dim": int(m.graph.dim), "dtype": opts.output_dtype, "width": width(opts.output_dtype, int(m.graph.dim)),
        "normalization": {"in_graph": bool(m.graph.normalize), "applied": bool(opts.normalize)
                          and not m.graph.normalize,
                          "unit_length": bool(m.graph.normalize or opts.normalize)},
        "pooling": m.graph.pooling, "max_length": m.text_spec(opts.max_length).max_length, "views": views,
        "rows": sum(done[k]["rows"] for k in order), "tokens": sum(done[k]["tokens"] for k in order),
        "skipped": skipped, "skipped_rows": skipped_rows[:50],
        "skipped_files": [{"path": s.file.path, "reason": s.skipped} for s in plan.sources if s.skipped],
        "inputs": [{**i, "good_rows": r} for i, r in zip(fp["inputs"], rows)],
        "id": {"field": opts.fields.id, "kind": plan.id_kind,
               "row_numbers": [s.file.name for s in plan.sources if s.numbered and not s.skipped]},
        "text": {"field": opts.text_field, "instruction_field": opts.instruction_field,
                 "instruction": opts.instruction, "prompt_name": opts.prompt_name, "prompt": prompt},
        "batching": {"window": opts.window, "max_batch_tokens": opts.max_batch_tokens},
        "parts": [{"file": parts.PART.format(k), "rows": done[k]["rows"], "bytes": done[k]["bytes"]} for k in order],
        "run": run, "versions": versions, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if opts.output_dtype == "int8":
        out["int8_ranges"] = done[0]["int8_ranges"]
        out["int8_calibration"] = {"window": 0, "rows": done[0]["rows"],
                                   "rule": "per-dimension min/max of the float32 vectors of window 0"}
    return out
