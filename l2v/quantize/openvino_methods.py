"""`ov-fp32`, `ov-bf16` and `ov-int8`: OpenVINO IR variants (kind `openvino`) made from the artifact's reference graph.

ov-fp32 converts the validated ONNX graph with `openvino.convert_model` (dynamic batch and sequence kept,
fp32 weights, no fp16 compression) and checks it against ONNX Runtime on a few eval texts (min cosine
>= 0.99999, else `ValidationError`). ov-bf16 is the same IR recorded to run with bf16 float ops
(`facts.plugin`, applied by the backend at load, so the gate measures what users run). ov-int8 converts the same way and quantizes with NNCF (see
`OvInt8Config`): static int8 PTQ with SmoothQuant on the calibration texts, the decoder layers l2v's
sensitivity ranking marks kept in fp32 through NNCF's ignored scope, optionally NNCF's accuracy-control
loop driven by the recall gate's own metric. Both write `model_<variant>.xml` + `.bin` into the
VariantWriter's directory, so the files are recorded, checksummed and gated like every variant.

NNCF names operations after the OpenVINO model; the ONNX frontend names each op after its ONNX node or
output tensor, so an ONNX projection MatMul (known by its PyTorch module name, see graph.py) maps to
its OpenVINO MatMul by name.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from pathlib import Path

import numpy as np

from l2v.artifact import FileRecord, Variant, variant_file
from l2v.errors import OptionalDependencyError, ValidationError
from l2v.quantize.config import OvBf16Config, OvFp32Config, OvInt8Config
from l2v.quantize.registry import Built, register
from l2v.runtime.openvino import openvino, runtime_precisions

CONVERSION_MIN_COSINE = 0.99999
CHECK_TEXTS = 16  # eval texts (<= CHECK_TOKENS tokens) the IR conversion is checked on
CHECK_TOKENS = 64
DEFAULT_MAX_DROP = 0.05  # accuracy mode without --min-recall


def _nncf():
    try:
        import nncf
    except ImportError as e:
        raise OptionalDependencyError("nncf", "openvino", "the ov-int8 quantization method") from e
    return nncf


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs each algorithm step at INFO and draws progress bars on stdout: keep the CLI to l2v's lines."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def convert(onnx_path: Path):
    """The ONNX graph as an `ov.Model` (its external data is read from beside it); the batch and sequence
    axes must stay dynamic."""
    ov = openvino("converting to OpenVINO IR")
    model = ov.convert_model(str(onnx_path))
    static = [i.get_any_name() for i in model.inputs if i.get_partial_shape().is_static]
    if static:
        raise ValidationError(f"OpenVINO made input(s) {static} static while converting {Path(onnx_path).name}",
                              hint="report this model; use the onnx variants meanwhile")
    return model


def save_ir(model, tmp: Path, name: str) -> list[str]:
    """`model_<name>.xml` + `.bin` in `tmp`, weights as they are (fp32 stays fp32); returns the file names."""
    ov = openvino()
    xml = variant_file(name, ".xml")
    ov.save_model(model, str(Path(tmp) / xml), compress_to_fp16=False)
    return [xml, xml[:-len(".xml")] + ".bin"]


def ir_variant(files: list[str], dtype: str, **facts) -> Variant:
    return Variant(kind="openvino", dtype=dtype, files=[FileRecord(f) for f in files], facts=facts)


def versions() -> dict:
    ov = openvino()
    out = {"openvino": ov.get_version()}
    try:
        import nncf

        out["nncf"] = nncf.__version__
    except ImportError:
        pass
    return out


def inputs_of(batch, names) -> dict:
    return {k: np.ascontiguousarray(batch[k]) for k in names}


def check_conversion(ctx, model) -> float:
    """Min cosine between the compiled IR and ONNX Runtime's reference graph on a few eval texts."""
    from l2v.eval.metrics import cosine_rowwise
    from l2v.runtime.openvino import OpenVINOBackend, compile_model

    backend = OpenVINOBackend(compile_model(model), ctx.output)
    batches = ctx.batches(ctx.gate.texts[:CHECK_TEXTS], CHECK_TOKENS, batch=CHECK_TEXTS)
    ref = np.concatenate([ctx.gate.reference_backend.run(b) for b in batches])
    got = np.concatenate([backend.run(b) for b in batches])
    backend.close()
    cos = float(cosine_rowwise(ref, got).min())
    if not cos >= CONVERSION_MIN_COSINE:
        raise ValidationError(f"the OpenVINO IR disagrees with ONNX Runtime's {ctx.source_name} graph "
                              f"(min cosine {cos:.6f} < {CONVERSION_MIN_COSINE})",
                              hint="report this model; use the onnx variants meanwhile")
    return cos


# ---------------------------------------------------------------------------------------- names
def onnx_to_ov_names(ov_model, onnx_nodes) -> dict[str, str]:
    """{ONNX MatMul node name: OpenVINO MatMul friendly name} for `onnx_nodes` (NodeProtos). The ONNX
    frontend keeps a node's name or its output tensor's name on the op it makes."""
    wanted = {}
    for n in onnx_nodes:
        wanted[n.name] = n.name
        wanted[n.output[0]] = n.name
    found = {}
    for op in ov_model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        for nm in (op.get_friendly_name(), *op.output(0).get_names()):
            if nm in wanted:
                found[wanted[nm]] = op.get_friendly_name()
                break
    return found


def projection_index(source_path: Path):
    """[(ONNX MatMul node, module name)] of the projections, read without keeping the weights."""
    import onnx

    from l2v.quantize import graph

    model = onnx.load(str(source_path), load_external_data=False)
    for init in model.graph.initializer:  # only names, dims and node metadata are needed
        init.ClearField("raw_data")
    return graph.linear_matmuls(model)


def ignored_matmuls(ctx, cfg: OvInt8Config, ov_model) -> tuple[list[str], list[str]]:
    """(OpenVINO projection MatMul names kept in fp32, the kept decoder layers): the `keep_sensitive` most
    sensitive layers by l2v's end-to-end ranking (per-tensor int8 arithmetic) and `keep_fp32` patterns."""
    from l2v.model.arch import arch_of
    from l2v.quantize import graph

    patterns, kept = list(cfg.keep_fp32), []
    if cfg.keep_sensitive:
        kept = [u for u, _ in ranking(ctx)[:cfg.keep_sensitive]]
        arch = arch_of(ctx.torch_model.config)
        patterns += [p for u in kept for p in arch.unit_patterns(u)]
    if not patterns:
        return [], kept
    nodes = [n for n, mod in projection_index(ctx.source_path) if graph.matches(mod, patterns)]
    names = onnx_to_ov_names(ov_model, nodes)
    missing = [n.name for n in nodes if n.name not in names]
    if missing:
        raise ValidationError(f"{len(missing)} ONNX MatMul(s) to keep in fp32 have no OpenVINO counterpart "
                              f"(e.g. {missing[0]!r})", hint="report this model; drop keep_sensitive/keep_fp32")
    return sorted(names.values()), kept


def activation_matmuls(model) -> list[str]:
    """Names of the MatMuls with no weight operand (activation x activation: attention scores Q·K^T and
    P·V). NNCF's transformer preset leaves P·V alone but quantizes Q·K^T with one static scale per
    tensor for Q and for K; ov-int8 keeps both in fp32 unless `quantize_attention`."""
    return sorted(op.get_friendly_name() for op in model.get_ops()
                  if op.get_type_name() == "MatMul" and not _has_weight(op))


def _has_weight(matmul) -> bool:
    """A MatMul operand is a weight when it is a Constant (fp32 IR), NNCF's compressed int8 weight, or a
    FakeQuantize of either."""
    for i in range(2):
        node = matmul.input_value(i).get_node()
        if node.get_type_name() == "FakeQuantize":
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" or _int8_weight(node) or _const_chain(node):
            return True
    return False


def _const_chain(node, depth: int = 3) -> bool:
    """Constant -> Convert / Reshape / Transpose: a weight the frontend did not fold."""
    t = node.get_type_name()
    if t == "Constant":
        return True
    return bool(depth) and t in ("Convert", "Reshape", "Transpose") and _const_chain(node.input_value(0).get_node(),
                                                                                     depth - 1)


def ranking(ctx) -> list[tuple[str, float]]:
    """Decoder layers, most sensitive first, with NNCF's arithmetic (per-tensor activations, no smoothing
    and no outlier channels), through the same cached ranking as int8-smooth. mode="weights" ranks the same
    way: ranking with the plugin's run-time arithmetic (per token and group of 32) was tried and kept
    layers that helped less (SmolLM2-135M, 8 kept, asymmetric weights: gate recall@10 0.888 vs 0.904)."""
    from l2v.quantize.config import Int8SmoothConfig
    from l2v.quantize.smooth import sensitive_layers

    return sensitive_layers(ctx, Int8SmoothConfig(outlier_channels=0), {}, None, kernel="tensor")


# ---------------------------------------------------------------------------------------- structure
def int8_structure(model) -> dict:
    """What NNCF left in the IR: FakeQuantize nodes; projection MatMuls fed by one (int8 at run time), with
    int8-compressed weights only, and with plain fp32 weights; activation x activation (attention)
    MatMuls fed by a FakeQuantize and left in fp32."""
    out = dict.fromkeys(("FakeQuantize", "matmul_int8_activations", "matmul_int8_weights_only", "matmul_fp32",
                         "attention_matmul_int8", "attention_matmul_fp32"), 0)
    for op in model.get_ops():
        t = op.get_type_name()
        if t == "FakeQuantize":
            out["FakeQuantize"] += 1
        elif t == "MatMul":
            srcs = [op.input_value(i).get_node() for i in range(2)]
            fq = any(s.get_type_name() == "FakeQuantize" for s in srcs)
            if not _has_weight(op):
                out["attention_matmul_int8" if fq else "attention_matmul_fp32"] += 1
            elif fq:
                out["matmul_int8_activations"] += 1
            elif any(_int8_weight(s) for s in srcs):
                out["matmul_int8_weights_only"] += 1
            else:
                out["matmul_fp32"] += 1
    return out


def _int8_weight(node, depth: int = 5) -> bool:
    """Constant(i8/u8) -> Convert -> [Subtract] -> Multiply [-> Reshape]: NNCF's compressed weight."""
    t = node.get_type_name()
    if t == "Constant":
        return node.get_output_element_type(0).get_type_name() in ("i8", "u8")
    if depth and t in ("Convert", "Subtract", "Multiply", "Reshape", "Transpose"):
        return any(_int8_weight(node.input_value(i).get_node(), depth - 1) for i in range(node.get_input_size()))
    return False


# ---------------------------------------------------------------------------------------- handlers
@register(OvFp32Config, kind="openvino")
def build_ov_fp32(ctx, cfg: OvFp32Config, tmp: Path) -> Built:
    return _float_ir(ctx, cfg, tmp, "f32")


@register(OvBf16Config, kind="openvino")
def build_ov_bf16(ctx, cfg: OvBf16Config, tmp: Path) -> Built:
    return _float_ir(ctx, cfg, tmp, "bf16")


def _float_ir(ctx, cfg, tmp: Path, precision: str) -> Built:
    """The converted IR with fp32 weights, checked at f32 against ONNX Runtime, to run at `precision`."""
    from l2v.runtime.openvino import compile_recorded

    t0 = time.perf_counter()
    model = convert(ctx.source_path)
    cos = check_conversion(ctx, model)
    plugin = plugin_facts(precision, None)
    facts = {"plugin": plugin, "runtime_precisions": runtime_precisions(compile_recorded(model, plugin))} \
        if plugin else {}
    files = save_ir(model, tmp, cfg.variant)
    return Built(ir_variant(files, "fp32" if precision == "f32" else precision, conversion_min_cosine=round(cos, 7),
                            converted_from=ctx.source_name, **facts,
                            build_seconds=round(time.perf_counter() - t0, 1), **versions()))


def plugin_facts(precision: str, dynamic_group: int | None) -> dict:
    """The CPU plugin properties a variant records (facts.plugin) for the backend to compile it with; the
    defaults (f32, the plugin's own dynamic quantization) are left out."""
    out = {}
    if precision != "f32":
        out["INFERENCE_PRECISION_HINT"] = precision
    if dynamic_group is not None:
        out["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = int(dynamic_group)
    return out


def _quantize(ctx, cfg: OvInt8Config, model, scope):
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import (AdvancedAccuracyRestorerParameters,
                                                       AdvancedQuantizationParameters, AdvancedSmoothQuantParameters)

    if cfg.mode == "weights":
        return nncf.compress_weights(model, mode=_weight_mode(nncf, cfg), ignored_scope=scope), {}
    names = [i.get_any_name() for i in model.inputs]
    ctx.progress(f"ov-int8: calibrating on {min(cfg.calib_texts, len(ctx.calib_texts))} texts (batch 1, "
                 f"<= {cfg.calib_max_length} tokens)")
    calib = [inputs_of(b, names) for b in ctx.batches(ctx.calib_texts[:cfg.calib_texts], cfg.calib_max_length, batch=1)]
    alpha = -1.0 if cfg.smoothquant_alpha is None else float(cfg.smoothquant_alpha)
    adv = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=alpha))
    common = dict(preset=nncf.QuantizationPreset(cfg.preset), model_type=nncf.ModelType.TRANSFORMER,
                  subset_size=len(calib), fast_bias_correction=True, ignored_scope=scope)
    if cfg.mode == "ptq":
        return nncf.quantize(model, nncf.Dataset(calib), advanced_parameters=adv, **common), {}
    gate = ctx.gate
    items = [inputs_of(b, names) for b in gate.batches]
    max_drop = float(cfg.max_drop or (1.0 - ctx.min_recall if ctx.min_recall else DEFAULT_MAX_DROP))
    ctx.progress(f"ov-int8: accuracy control, recall@10 on {len(gate.texts)} eval texts may drop by {max_drop:.3f}")
    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=cfg.max_iterations,
                                                  ranking_subset_size=min(cfg.ranking_batches, len(items)),
                                                  num_ranking_workers=1)
    q = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calib), nncf.Dataset(items), recall_validation(gate, items), max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=adv,
        advanced_accuracy_restorer_parameters=restorer, **common)
    return q, {"max_drop": max_drop}


def _weight_mode(nncf, cfg: OvInt8Config):
    m = nncf.CompressWeightsMode
    return m.INT8_ASYM if cfg.weights == "asym" else m.INT8_SYM


def recall_validation(gate, items: list[dict]):
    """NNCF's `validation_fn(compiled_model, data)`: recall@10 against the gate's reference over all the
    gate's eval batches. For any other subset (NNCF probes one item to choose its mode) it returns
    (None, None), which makes NNCF rank operations by the change of the output vectors."""
    from l2v.quantize.measure import fidelity

    def fn(compiled, data):
        data = list(data)
        if len(data) != len(items):
            return None, None
        port = compiled.output(gate.output)
        req = compiled.create_infer_request()
        got = []
        for item in data:
            req.infer(item)
            got.append(np.array(req.get_tensor(port).data, dtype=np.float32, copy=True))
        return fidelity(gate.reference, np.concatenate(got))["recall@10"], None
    return fn


@register(OvInt8Config, kind="openvino", calibrates=True)
def build_ov_int8(ctx, cfg: OvInt8Config, tmp: Path) -> Built:
    nncf = _nncf()
    from l2v.runtime.openvino import compile_recorded

    t0 = time.perf_counter()
    model = convert(ctx.source_path)
    ignored, kept = ignored_matmuls(ctx, cfg, model)
    attention = [] if cfg.quantize_attention or cfg.mode == "weights" else activation_matmuls(model)
    scope = nncf.IgnoredScope(names=ignored + attention, validate=True) if ignored or attention else None
    with _quiet_nncf():
        q, extra = _quantize(ctx, cfg, model, scope)
    del model
    files = save_ir(q, tmp, cfg.variant)
    plugin = plugin_facts(cfg.compute, cfg.dynamic_group)
    facts = {"mode": cfg.mode, "weights": cfg.weights, "kept_layers": kept, "kept_fp32": len(ignored),
             "attention_fp32": len(attention), **extra, **({"plugin": plugin} if plugin else {}),
             "structure": int8_structure(q),
             "runtime_precisions": runtime_precisions(compile_recorded(q, plugin)),
             "build_seconds": round(time.perf_counter() - t0, 1), **versions()}
    return Built(ir_variant(files, "int8", **facts))
