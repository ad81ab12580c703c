"""`quantize_artifact`: add quantized variants to an existing artifact, gated on recall, atomically.

The plan (every option, the text files) is checked before anything is opened. New files are written
into the artifact's owned temporary directory (`VariantWriter`); each variant is measured against the
artifact's reference graph on the eval set and gated; only when every requested variant passes are the
files moved in and `l2v.json` replaced. A refused variant, or any error, leaves the artifact as it was.
"""
from __future__ import annotations

import sys
import time

from l2v.errors import ArtifactError, ValidationError
from l2v.quantize.plan import QuantPlan, plan_quantization

EVAL_MAX_LENGTH = 128
SPEED_TOKENS = 64


class RecallGateError(ValidationError):
    """A variant's neighbour recall against the reference is below --min-recall; nothing was written."""


def _progress(enabled: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if enabled:
            print(f"[quantize] {msg} (t={time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    return say


def quantize_artifact(artifact_dir, methods, *, calib=None, eval=None, min_recall: float | None = None,
                      overwrite: bool = False, speed: bool = True, progress: bool = False,
                      eval_max_length: int = EVAL_MAX_LENGTH, torch_model=None, plan: QuantPlan | None = None,
                      verify: bool = True, layerwise=None) -> dict:
    """Add one variant per entry of `methods` ("int8-smooth", "w4:block_size=64", or QuantConfig objects).

    calib / eval: None (built-in real text), a file (one text per line or JSONL "text"), or a list of str.
    min_recall: refuse (RecallGateError, exit 3, nothing written) any variant whose recall@10 against
    the reference graph on the eval set is below it. torch_model: the artifact's fp32 `EmbeddingModel`
    already in memory (export hands it over; else calibration loads torch/); layerwise: instead, the model
    computed one decoder layer at a time (a streamed export hands it over). plan: an already checked
    plan (export checks it before loading the model). verify: check every file's sha256 first (a corrupt
    graph must not be quantized). Returns {variant name: Variant}.
    """
    from l2v.artifact import open_artifact
    from l2v.quantize.context import Context
    from l2v.quantize.gate import Gate

    if plan is None:
        plan_quantization(methods, calib, eval, min_recall)  # options first: a typo fails before any I/O
    art = open_artifact(artifact_dir)
    m = art.manifest
    has_torch = bool(m.variants_of("torch"))
    plan = plan or plan_quantization(methods, calib, eval, min_recall, torch_weights=has_torch,
                                     model_available=torch_model is not None or layerwise is not None or has_torch,
                                     merged=m.adapters_merged)
    clash = [n for n in plan.names if n in m.variants]
    if clash and not overwrite:
        raise ArtifactError(f"variant(s) {clash} already exist in {str(art.root)!r}",
                            hint="pass overwrite=True (--overwrite) to replace them")
    say = _progress(progress)
    ctx = Context(art, plan.calib_texts, say, torch_model, layerwise)
    if ctx.streamed:
        from l2v.quantize.plan import check_streamable

        check_streamable(plan)
    if verify:
        say("checking the artifact's checksums")
        art.check(full=True)
    gate = Gate(ctx, plan.eval_texts, eval_max_length, speed, SPEED_TOKENS, one_at_a_time=ctx.streamed)
    ctx.gate, ctx.min_recall = gate, plan.min_recall  # for searching methods (auto)
    return _build_all(art, plan, ctx, gate, clash, say, eval_max_length)


def _build_all(art, plan: QuantPlan, ctx, gate, clash: list, say, eval_max_length: int) -> dict:
    from l2v.artifact import VariantWriter
    from l2v.quantize.registry import get

    with VariantWriter(art) as writer:
        built, refused = {}, []
        for cfg in plan.configs:
            method = get(cfg.method)
            say(f"building {cfg.variant} ({cfg.method})")
            b = method.build(ctx, cfg, writer.tmp)
            say(f"measuring {cfg.variant} against {ctx.source_name} on {len(plan.eval_texts)} eval texts")
            v = b.variant
            v.quant = cfg.to_dict()
            v.calibration = plan.calib_record if cfg.calibrates(method.calibrates) else None
            v.gate = {**gate.measure(b, writer.tmp), "eval": plan.eval_record, "eval_max_length": eval_max_length,
                      "min_recall": plan.min_recall}
            built[cfg.variant] = v
            r = v.gate["recall@10"]
            if plan.min_recall is not None and r < plan.min_recall:
                refused.append(f"{cfg.variant} recall@10 {r:.4f} < {plan.min_recall}"
                               f" (mean cosine {v.gate['mean_cosine']:.4f})")
        if refused:
            raise RecallGateError(f"refused {'; '.join(refused)} on {len(plan.eval_texts)} eval texts; nothing written",
                                  hint="lower --min-recall, or try int8-smooth / w8 / --quant auto")
        for name, v in built.items():
            writer.add(name, v)
        writer.commit(replace=clash)
    say(f"added {', '.join(built)} to {art.root}")
    return built
