"""`trt-fp16`, `trt-bf16`, `trt-int8`, `trt-fp8`: TensorRT-ready graphs and their build plans, made like
every other quantized variant (a registered handler) so the recall gate, `--min-recall`, the manifest
entry and `l2v.load(dir, variant=...)` apply unchanged. The variant's kind is `trt`: its backend runs the
engine where TensorRT and a GPU exist, else the graph on ONNX Runtime (l2v/runtime/trt.py), which is
what the gate measures here.

Steps (each handler): the fp32 graph -> shape arithmetic folded (trt_graph.simplify) -> opset 19 ->
strongly typed fp16/bf16 with fp32 islands (trt_typed) -> for int8/fp8, Q/DQ on the projections with our
calibration (qdq.py), keeping the most sensitive projection groups in fp16 until the gate's target is
met -> the graph + `model_<variant>.plan.json` (l2v/trt/plan.py). Engines are built later, from the plan,
by export (`--trt`, where TensorRT exists) or `l2v-build-trt DIR`.
"""
from __future__ import annotations

from pathlib import Path

from l2v.artifact import FileRecord, Variant, variant_file
from l2v.errors import InputError, ValidationError
from l2v.quantize import graph
from l2v.quantize.config import TrtBf16Config, TrtConfig, TrtFp8Config, TrtFp16Config, TrtInt8Config, TrtQuantConfig
from l2v.quantize.registry import Built, register

DEFAULT_TARGET = 0.95
TRT_OPSET = 19  # float8e4m3fn Q/DQ; TensorRT 10.x parses opsets up to 20
SENSITIVITY_TEXTS, SENSITIVITY_TOKENS = 8, 32


def copy(model):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def prepared_base(ctx, tmp: Path) -> tuple[Path, dict]:
    """The simplified opset-19 fp32 graph every trt-* variant starts from, saved once per run in `tmp`."""
    from l2v.quantize.trt_graph import set_opset, simplify, trt_unsupported

    key = "trt-base"
    if key in ctx.cache and ctx.cache[key][0].exists():
        return ctx.cache[key]
    src = ctx.manifest.variants[ctx.source_name]
    if src.dtype != "fp32":
        raise InputError(f"trt-* variants are made from the fp32 graph; this artifact's source graph "
                         f"{ctx.source_name!r} is {src.dtype}", hint="re-export with the default --dtype fp32")
    ctx.progress("trt: folding shape arithmetic and raising the opset to 19")
    model, facts = simplify(graph.load(ctx.source_path))
    model = set_opset(model, TRT_OPSET)
    bad = trt_unsupported(model)
    if bad:
        raise ValidationError(f"the graph has ops TensorRT cannot parse: {', '.join(bad)}",
                              hint="report this model; the onnx variants still work")
    path = Path(tmp) / ".trt_base.onnx"
    graph.save(model, path)
    ctx.cache[key] = (path, {"nodes_exported": facts["nodes_before"], "nodes_simplified": facts["nodes_after"],
                             "simplifier": facts["steps"], "opset": TRT_OPSET})
    return ctx.cache[key]


def typed(model, precision: str, fp32_residual: bool, fp32_scores: bool = False) -> tuple:
    """The strongly typed graph (in place) and its facts; int8/fp8 compute the rest in fp16. `fp32_scores`:
    the architecture's (Arch.fp32_scores) q/k projections and scores in fp32."""
    from l2v.quantize.trt_typed import classify, to_strongly_typed

    low = "bf16" if precision == "bf16" else "fp16"
    return to_strongly_typed(model, low, classify(model, fp32_residual, fp32_scores))


def fp32_scores(ctx) -> bool:
    from l2v.model.arch import arch_of

    return arch_of(ctx.manifest.model.architecture).fp32_scores


def policy(precision: str, facts: dict, cfg: TrtConfig) -> dict:
    low = "bf16" if precision == "bf16" else "fp16"
    out = {"compute": low, "fp32": ["RMSNorm/LayerNorm", "attention scale + mask + softmax", "pooling",
                                    "L2 normalisation", "masks, positions, rotary tables"]
           + (["residual stream"] if cfg.fp32_residual else [])
           + (["q/k projections, RoPE, QK^T"] if (facts.get("node_classes") or {}).get("fp32:scores") else []),
           "casts": facts.get("casts"), "node_classes": facts.get("node_classes")}
    if precision in ("int8", "fp8"):
        out["quantized"] = (f"projection MatMuls: {precision} weights per output channel x {precision} activations "
                            "per tensor (static), Q/DQ in the graph")
    return out


def finish(ctx, cfg: TrtConfig, model, tmp: Path, facts: dict) -> Built:
    """Save the graph and its build plan; the new `trt` variant."""
    from l2v.quantize.trt_graph import node_counts, trt_unsupported
    from l2v.trt.plan import make_plan, parse_shapes, plan_json

    bad = trt_unsupported(model)
    if bad:
        raise ValidationError(f"internal: {cfg.variant} has ops TensorRT cannot parse: {', '.join(bad)}")
    name = variant_file(cfg.variant)
    files = graph.save(model, Path(tmp) / name)
    counts = node_counts(model)
    profiles = parse_shapes(cfg.shapes, ctx.manifest.max_length)
    pol = facts["precision_policy"]
    plan = make_plan(cfg.variant, cfg.precision, name, len(files) > 1, profiles, pol,
                     int(cfg.workspace_gb * (1 << 30)), cfg.opt_level, list(ctx.manifest.graph.inputs),
                     ctx.manifest.graph.output)
    plan_file = variant_file(cfg.variant, ".plan.json")
    (Path(tmp) / plan_file).write_text(plan_json(plan))
    ops = counts["ops"]
    facts = {**facts, "nodes": counts["nodes"], "casts": ops.get("Cast", 0), "quant_ops": graph.quant_op_counts(model),
             "trt_unsupported_ops": [], "plan": plan_file, "trtexec": plan.to_dict()["trtexec"],
             "profiles": [p.spec() for p in profiles], "engine": None}
    facts.pop("node_classes", None)
    return Built(Variant(kind="trt", dtype=cfg.precision, files=[FileRecord(f) for f in files] + [FileRecord(plan_file)],
                         facts=facts))


def build_typed(ctx, cfg: TrtConfig, tmp: Path) -> Built:
    base_path, base_facts = prepared_base(ctx, tmp)
    ctx.progress(f"{cfg.variant}: strongly typed {cfg.precision} graph with fp32 islands")
    model, tfacts = typed(graph.load(base_path), cfg.precision, cfg.fp32_residual, fp32_scores(ctx))
    return finish(ctx, cfg, model, tmp, {**base_facts, **tfacts, "precision_policy": policy(cfg.precision, tfacts, cfg)})


@register(TrtFp16Config, kind="trt")
def build_trt_fp16(ctx, cfg: TrtFp16Config, tmp: Path) -> Built:
    return build_typed(ctx, cfg, tmp)


@register(TrtBf16Config, kind="trt")
def build_trt_bf16(ctx, cfg: TrtBf16Config, tmp: Path) -> Built:
    return build_typed(ctx, cfg, tmp)


# ------------------------------------------------------------------------------------------ int8 / fp8
class QuantRecipe:
    """The calibrated pieces of one int8/fp8 recipe: the fp16 graph (smoothed first, if asked), the
    activation statistics, the outlier channels and the sensitivity ranking of the projection groups."""

    def __init__(self, ctx, cfg: TrtQuantConfig, tmp: Path):
        from l2v.quantize.smooth import outlier_channels, smooth

        self.ctx, self.cfg = ctx, cfg
        base_path, self.base_facts = prepared_base(ctx, tmp)
        self.stats = ctx.act_stats(cfg.calib_texts, cfg.calib_max_length)
        model = graph.load(base_path)
        self.folded = smooth(model, self.stats, float(cfg.alpha), True) if cfg.smoothing else {}
        ctx.progress(f"{cfg.variant}: strongly typed fp16 graph with fp32 islands")
        self.model, self.typed_facts = typed(model, cfg.precision, cfg.fp32_residual, fp32_scores(ctx))
        self.outliers = outlier_channels(self.model, self.stats, self.folded, cfg.outlier_channels)

    @property
    def smooth_s(self) -> dict:
        return {m: v[0] for m, v in self.folded.items()}

    def ranked_units(self) -> list[tuple[str, float]]:
        """Projection groups, most sensitive first, under this recipe's exact arithmetic (cached)."""
        from l2v.quantize.qdq import activation_amax
        from l2v.quantize.sensitivity import rank_units
        from l2v.quantize.smooth import by_module

        cfg = self.cfg
        key = ("trt-sensitivity", cfg.precision, cfg.smoothing, float(cfg.alpha), cfg.outlier_channels,
               cfg.calib_texts, cfg.calib_max_length)
        if key not in self.ctx.cache:
            self.ctx.progress(f"{cfg.variant}: ranking projection groups by end-to-end sensitivity")
            outl = by_module(self.model, self.outliers)
            amax = {m: activation_amax(self.stats, [m], outl.get(m, []), self.smooth_s.get(m)) for m in self.stats}
            batches = self.ctx.batches(self.ctx.calib_texts[:SENSITIVITY_TEXTS], SENSITIVITY_TOKENS,
                                       batch=SENSITIVITY_TEXTS)
            self.ctx.cache[key] = rank_units(self.ctx.torch_model, batches, self.smooth_s, by="unit", outliers=outl,
                                             kernel=f"{cfg.precision}-static", act_amax=amax)
        return self.ctx.cache[key]

    def graph(self, keep: int) -> tuple:
        """The Q/DQ graph with the `keep` most sensitive projection groups left in fp16."""
        from l2v.model.arch import arch_of
        from l2v.quantize.qdq import insert_qdq

        kept = [u for u, _ in self.ranked_units()[:keep]] if keep else []
        arch = arch_of(self.ctx.torch_model.config) if kept else None
        exclude = graph.node_names(self.model, [p for u in kept for p in arch.unit_patterns(u)])
        m = copy(self.model)
        facts = insert_qdq(m, self.stats, self.cfg.precision, self.outliers, self.smooth_s, exclude)
        return m, {**facts, "kept_units": kept, "kept_fp16_matmuls": len(exclude)}


def _search(recipe: QuantRecipe, cfg: TrtQuantConfig, target: float, tmp: Path) -> tuple[int, dict]:
    """The smallest number of kept units whose graph reaches `target` on the gate's eval texts (or the
    most faithful one tried); returns (k, {k: recall@10})."""
    from l2v.quantize.auto import smallest_passing

    gate, tried = recipe.ctx.gate, {}

    def attempt(k: int) -> float:
        m, _ = recipe.graph(k)
        path = Path(tmp) / f".{cfg.variant}_k{k}.onnx"
        graph.save(m, path)
        del m
        try:
            with gate.graph_backend(path) as backend:
                tried[k] = gate.recall(backend)["recall@10"]
        finally:
            path.unlink(missing_ok=True)
            Path(f"{path}.data").unlink(missing_ok=True)
        recipe.ctx.progress(f"{cfg.variant}: {k} unit(s) in fp16 -> recall@10 {tried[k]:.4f} (target {target})")
        return tried[k]

    smallest_passing(attempt, target, cfg.step, cfg.max_keep)
    passing = [k for k, r in tried.items() if r >= target]
    return (min(passing) if passing else max(tried, key=tried.get)), tried


def build_qdq(ctx, cfg: TrtQuantConfig, tmp: Path) -> Built:
    recipe = QuantRecipe(ctx, cfg, tmp)
    facts = {**recipe.base_facts, "smoothed_matmuls": len(recipe.folded),
             "outlier_channels": {"per_tensor": cfg.outlier_channels, "tensors": len(recipe.outliers)}}
    keep = cfg.keep_units
    if keep is None and ctx.gate is not None:
        target = float(cfg.min_recall or ctx.min_recall or DEFAULT_TARGET)
        keep, tried = _search(recipe, cfg, target, tmp)
        facts.update(target_recall=target, search={str(k): r for k, r in sorted(tried.items())})
    model, qfacts = recipe.graph(keep or 0)
    facts.update(qfacts, chosen_keep_units=keep or 0, precision_policy=policy(cfg.precision, recipe.typed_facts, cfg))
    recipe.model = None
    return finish(ctx, cfg, model, tmp, facts)


@register(TrtInt8Config, kind="trt", calibrates=True)
def build_trt_int8(ctx, cfg: TrtInt8Config, tmp: Path) -> Built:
    return build_qdq(ctx, cfg, tmp)


@register(TrtFp8Config, kind="trt", calibrates=True)
def build_trt_fp8(ctx, cfg: TrtFp8Config, tmp: Path) -> Built:
    return build_qdq(ctx, cfg, tmp)
