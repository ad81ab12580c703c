"""Fail fast: every quantization option checked before any model is loaded or any file written.

`plan_quantization(...)` parses each `--quant` spec, checks `--min-recall`, names and method/option
combinations, and reads the `--calib` / `--eval` files (refusing non-text), in well under a second for
a typo. Export calls it before loading the model; `quantize_artifact` calls it before opening anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from l2v.errors import InputError
from l2v.quantize.config import QuantConfig, parse_method

MIN_EVAL_TEXTS = 12
MIN_CALIB_TEXTS = 8
RESERVED_NAMES = ("fp32", "torch")


@dataclass
class QuantPlan:
    configs: list[QuantConfig]
    min_recall: float | None
    eval_texts: list[str]
    eval_record: dict
    calib_texts: list[str] = field(default_factory=list)
    calib_record: dict | None = None

    @property
    def names(self) -> list[str]:
        return [c.variant for c in self.configs]


def check_min_recall(min_recall) -> float | None:
    if min_recall is None:
        return None
    if isinstance(min_recall, bool) or not isinstance(min_recall, (int, float)) or not 0.0 < min_recall <= 1.0:
        raise InputError(f"--min-recall {min_recall!r} must be a number in (0, 1]", hint="e.g. --min-recall 0.95")
    return float(min_recall)


def source_variant(manifest) -> str:
    """The graph quantization starts from and gates against: fp32 when present, else the default graph."""
    if "fp32" in manifest.variants and manifest.variants["fp32"].kind == "onnx":
        return "fp32"
    if manifest.variant().kind == "onnx":
        return manifest.default_variant
    onnx = manifest.variants_of("onnx")
    if not onnx:
        from l2v.errors import ArtifactError

        raise ArtifactError("this artifact has no ONNX graph to quantize from")
    return onnx[0]


def plan_quantization(methods, calib=None, eval=None, min_recall=None, torch_weights: bool = True,
                      model_available: bool = True, merged: bool = True) -> QuantPlan:
    """methods: specs ("int8-smooth", "w4:block_size=64") or QuantConfig objects. torch_weights: whether
    the artifact has (or the export will write) torch/ weights, which bnb variants load; model_available:
    whether calibration has a PyTorch model (in memory at export, or from torch/); merged: whether every
    adapter is merged."""
    from l2v.quantize.registry import needs
    from l2v.quantize.texts import default_calibration_texts, default_eval_texts, resolve_texts
    from l2v.artifact import check_variant_name

    min_recall = check_min_recall(min_recall)
    if isinstance(methods, (str, QuantConfig)) or not hasattr(methods, "__iter__"):
        methods = [methods]
    configs = [parse_method(m) for m in methods]
    if not configs:
        raise InputError("no quantization method given", hint="pass --quant METHOD (e.g. int8-smooth, w4)")
    names = [c.variant for c in configs]
    for n in names:
        check_variant_name(n)
        if n in RESERVED_NAMES:
            raise InputError(f"a quantized variant cannot be named {n!r}", hint="give it a name: --quant 'w4:name=w4-b64'")
    dup = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
    if dup:
        raise InputError(f"variant name(s) {dup} requested twice", hint="give one a name: --quant 'w4:name=w4-b64'")
    if not merged:
        raise InputError("this artifact keeps its last adapter unmerged; quantize a merged export "
                         "(drop --keep-last-adapter-unmerged)")
    kinds = {c.method: needs(c.method) for c in configs}
    if not torch_weights:
        bad = [m for m, (kind, _) in kinds.items() if kind == "bnb"]
        if bad:
            raise InputError(f"--quant {bad[0]} runs on the torch weights at load, which --no-torch-weights drops",
                             hint="drop --no-torch-weights, or quantize to an ONNX variant (int8-smooth, w8, w4)")
    calibrating = [c.variant for c in configs if c.calibrates(kinds[c.method][1])]
    calibrates = bool(calibrating)
    if calibrates and not model_available:
        m = calibrating[0]
        raise InputError(f"--quant {m} calibrates on the PyTorch model, and this artifact has no torch/ weights",
                         hint="add the variant at export time (l2v-export ... --quant), or re-export without "
                              "--no-torch-weights; int8-dynamic, fp16, bf16 and w8/w4 with algorithm=rtn or hqq need none")
    calib_texts, calib_rec = (resolve_texts(calib, default_calibration_texts, "calib", MIN_CALIB_TEXTS)
                              if calibrates or calib is not None else ([], None))
    eval_texts, eval_rec = resolve_texts(eval, default_eval_texts, "eval", MIN_EVAL_TEXTS)
    return QuantPlan(configs, min_recall, eval_texts, eval_rec, calib_texts, calib_rec)


STREAMED_METHODS = {"w8": ("rtn", "hqq"), "w4": ("rtn", "hqq"), "int8-smooth": None, "bnb-int8": None, "bnb-nf4": None}


def check_streamable(plan: QuantPlan) -> None:
    """Refuse what layer-streamed quantization (graphs with external data, l2v.quantize.streamed) cannot do."""
    for cfg in plan.configs:
        if cfg.method not in STREAMED_METHODS:
            raise InputError(f"--quant {cfg.method} is not available for streamed (large) models",
                             hint="use w8, w4 or int8-smooth; fp16/bf16 graphs come from --dtype")
        algos = STREAMED_METHODS[cfg.method]
        if algos and cfg.algorithm not in algos:
            raise InputError(f"--quant {cfg.variant}: algorithm={cfg.algorithm} is not available for streamed "
                             "(large) models", hint=f"use algorithm={' or '.join(algos)}")
        if cfg.method == "int8-smooth":
            if cfg.smoothing:
                raise InputError(f"--quant {cfg.variant}: smoothing=true is not available for streamed (large) "
                                 "models", hint="drop smoothing (it is off by default)")
            if cfg.kernel == "integer":
                raise InputError(f"--quant {cfg.variant}: kernel=integer is not available for streamed (large) "
                                 "models", hint="use kernel=token (default) or kernel=nbits")
