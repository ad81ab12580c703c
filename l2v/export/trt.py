"""Build the TensorRT engines of an artifact's `trt-*` variants from their plans, validate them, and
record them in the manifest (through `VariantWriter`, so nothing half-built ships). Used by
`l2v-export --trt` (where TensorRT and a GPU exist) and by `l2v-build-trt DIR` (later, on a GPU box).

Validation, on the export's validation texts: an fp16 engine against the fp32 graph (min cosine >=
0.999, as NeMo's fp16 export check); a bf16/int8/fp8 engine against its own graph on ONNX Runtime, i.e.
against what the recall gate measured (min cosine >= 0.99); both figures are recorded either way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from l2v.errors import L2VError, OptionalDependencyError, ValidationError

MIN_COSINE = {"fp16": 0.999}  # vs the fp32 graph
MIN_COSINE_VS_GRAPH = 0.99  # bf16 / int8 / fp8 vs the same graph on ONNX Runtime
VALIDATION_TEXTS = 16


def notice(root: Path, reason: str) -> str:
    """The one line `--trt` prints when it cannot build engines here."""
    return (f"l2v: TensorRT engines not built ({reason}); the trt-* graphs and build plans are in {root}: build "
            f"them on a GPU machine with `pip install 'l2v-export[trt]'` then `l2v-build-trt {root}` "
            f"(or the trtexec line in each model_trt-*.plan.json)")


def _batches(art, plan, texts: list[str]) -> list:
    p = plan.profiles[0]
    pre = art.preprocessor(min(p.sequence[2], art.manifest.max_length))
    rows = pre.rows(texts)
    size = max(1, min(8, p.batch[2]))
    return [pre.pad(rows[i:i + size]) for i in range(0, len(rows), size)]


def validate(art, name: str, variant, plan, engine_path: Path, built: dict, texts: list[str]) -> dict:
    """Run the new engine on `texts` against the fp32 graph and against the variant's graph on ORT."""
    from l2v.eval.metrics import cosine_stats
    from l2v.quantize.plan import source_variant
    from l2v.runtime.backend import RunOptions, open_backend
    from l2v.runtime.trt import TrtGraphBackend
    from l2v.trt.engine import TrtRunner

    batches = _batches(art, plan, texts)
    runner = TrtRunner(engine_path, plan, built)
    try:
        got = np.concatenate([runner({k: b[k] for k in plan.inputs}) for b in batches])
    finally:
        runner.close()
    quiet = RunOptions(spinning=False)
    ref_name = source_variant(art.manifest)
    with open_backend(art, ref_name, quiet) as ref_b, TrtGraphBackend.open(art, variant, quiet) as graph_b:
        ref = np.concatenate([ref_b.run(b) for b in batches])
        sim = np.concatenate([graph_b.run(b) for b in batches])
    vs_ref, vs_graph = cosine_stats(ref, got), cosine_stats(sim, got)
    out = {"texts": len(texts), "reference": ref_name, "min_cosine": round(vs_ref["min"], 6),
           "mean_cosine": round(vs_ref["mean"], 6), "min_cosine_vs_graph_on_ort": round(vs_graph["min"], 6)}
    if variant.dtype in MIN_COSINE:
        ok, need, what = vs_ref["min"] >= MIN_COSINE[variant.dtype], MIN_COSINE[variant.dtype], ref_name
        got_min = vs_ref["min"]
    else:
        ok, need, what, got_min = vs_graph["min"] >= MIN_COSINE_VS_GRAPH, MIN_COSINE_VS_GRAPH, "its graph on ORT", vs_graph["min"]
    if not ok:
        raise ValidationError(f"{name}: the TensorRT engine disagrees with {what} (min cosine {got_min:.5f} < {need})",
                              hint="nothing was recorded; report the GPU and TensorRT version")
    return out


def build_engines(root, names=None, progress=None, texts: list[str] | None = None) -> dict:
    """Build, validate and record the engines of the trt variants `names` (default: all) of the artifact
    at `root`; returns {name: engine facts}. Needs TensorRT and a CUDA GPU (OptionalDependencyError /
    L2VError naming what is missing otherwise)."""
    from l2v.artifact import FileRecord, VariantWriter, open_artifact
    from l2v.artifact.files import resolve
    from l2v.export.options import default_texts
    from l2v.runtime.trt import plan_record
    from l2v.trt.engine import build_engine, unavailable_reason
    from l2v.trt.plan import read_plan

    say = progress or (lambda msg: None)
    reason = unavailable_reason()
    if reason == "tensorrt is not installed":
        raise OptionalDependencyError("tensorrt", "trt", "building TensorRT engines")
    if reason:
        raise L2VError(f"cannot build TensorRT engines here: {reason}", hint="run l2v-build-trt on a machine with a CUDA GPU")
    art = open_artifact(root)
    names = list(names or art.manifest.variants_of("trt"))
    if not names:
        raise L2VError(f"{str(art.root)!r} has no trt-* variant", hint="export with --trt (l2v-export MODEL --trt)")
    texts = texts or default_texts()[:VALIDATION_TEXTS]
    out = {}
    with VariantWriter(art) as writer:
        for name in names:
            variant = art.variant(name)
            if variant.kind != "trt":
                raise L2VError(f"variant {name!r} is {variant.kind}, not a trt variant",
                               hint=f"trt variants here: {', '.join(art.manifest.variants_of('trt')) or 'none'}")
            plan = read_plan(resolve(art.root, plan_record(variant).path))
            say(f"{name}: building the TensorRT engine ({plan.precision}, {len(plan.profiles)} profile(s))")
            built = build_engine(plan, art.root, writer.tmp / plan.engine)
            say(f"{name}: validating the engine on {len(texts)} texts")
            built["validation"] = validate(art, name, variant, plan, writer.tmp / plan.engine, built, texts)
            files = [r for r in variant.files if r.path != plan.engine] + [FileRecord(plan.engine)]
            writer.update(name, type(variant)(**{**variant.__dict__, "files": files,
                                                 "facts": {**variant.facts, "engine": built}}))
            out[name] = built
        writer.commit()
    return out
