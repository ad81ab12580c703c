"""One config dataclass per quantization method, serialisable to JSON (with a version) for the manifest.

`parse_method("w4:block_size=64,algorithm=hqq")` builds a config from a CLI spec; `config_from_dict`
reads one back from `l2v.json`. Validation raises `InputError` (never assert).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import ClassVar

from l2v.errors import InputError

CONFIG_VERSION = 1
DEFAULT_OUTLIER_CHANNELS = 32


@dataclass
class QuantConfig:
    method: ClassVar[str] = ""

    def check(self) -> None:
        """Raise InputError on a bad field value (subclasses extend)."""

    @property
    def variant(self) -> str:
        """Name of the variant in the manifest (the method name unless `name` is set)."""
        return getattr(self, "name", None) or self.method

    def to_dict(self) -> dict:
        return {"method": self.method, "version": CONFIG_VERSION, **dataclasses.asdict(self)}

    def calibrates(self, method_can: bool) -> bool:
        """Whether this config runs calibration texts through the model: its method's registered flag
        (l2v.quantize.registry.NEEDS), narrowed by options that need none (weight-only rtn/hqq)."""
        return method_can


def _choice(value, allowed, what: str) -> None:
    if value not in allowed:
        raise InputError(f"{what}={value!r} is not supported", hint=f"use one of {', '.join(map(str, allowed))}")


def _check_count(value, what: str, minimum: int, optional: bool = False) -> None:
    """An integer option (not a bool) of at least `minimum`; None passes when `optional`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"{what}={value!r} must be {bound}")


def _check_keep(keep, what: str = "keep_fp32") -> None:
    if not isinstance(keep, list) or not all(isinstance(k, str) and k for k in keep):
        raise InputError(f"{what}={keep!r} must be a list of MatMul name patterns (e.g. 'mlp.down_proj')")


@dataclass
class Fp16Config(QuantConfig):
    method: ClassVar[str] = "fp16"
    name: str | None = None


@dataclass
class Bf16Config(QuantConfig):
    """bf16 weight storage (half the size); on ORT's CPU provider the weights are cast back to fp32 at
    load and computed in fp32, because the CPU provider has no bf16 MatMul kernel."""
    method: ClassVar[str] = "bf16"
    name: str | None = None


@dataclass
class Int8DynamicConfig(QuantConfig):
    """ONNX Runtime dynamic quantization: int8 weights (per-channel), uint8 activations quantized per
    tensor at run time (the naive baseline)."""
    method: ClassVar[str] = "int8-dynamic"
    name: str | None = None
    per_channel: bool = True
    reduce_range: bool = False
    keep_fp32: list = field(default_factory=list)

    def check(self) -> None:
        _check_keep(self.keep_fp32)


@dataclass
class Int8SmoothConfig(QuantConfig):
    """W8A8 with outlier handling (int8 weights and int8 activations on the integer kernels).

    Outliers: outlier_channels = k input channels per activation tensor (the largest calibration
    max|x|) taken out of the int8 path and multiplied in fp32 (LLM.int8()-style decomposition, kernel
    "token" only; None = 32 for kernel="token", 0 otherwise); keep_sensitive = number of decoder layers
    left in fp32, the most sensitive first (measured end to end, see sensitivity.py); keep_fp32 =
    explicit MatMul name patterns left in fp32, e.g. ["mlp.down_proj", "layers.0."].
    smoothing=True first folds SmoothQuant scales (alpha) into the RMSNorm weights and into up_proj for
    down_proj. It is off by default: with the outlier channels split out it lowered recall (measured,
    docs/quantization.md).

    kernel="token" (default): int8 weights per output channel x int8 activations with one scale per
    token, on ORT's MatMulInteger (see w8a8.py);
    kernel="nbits": int8 weights per block of `block_size` input channels x int8 activations per token
    and block (MatMulNBits, accuracy_level 4): more accurate, but not faster than fp32 on ORT's CPU;
    kernel="integer": ORT dynamic MatMulInteger (uint8 activations with one scale per *tensor*).
    fused (kernel "token"): the graph form. True: one QuantizeLinear per activation tensor and
    MatMulIntegerToFloat (an ONNX Runtime com.microsoft op); False: the same arithmetic in standard ONNX
    ops only (MatMulInteger and element-wise ops), slower on ORT (measured, docs/quantization.md).
    reduce_range (kernel "token"): 7-bit weights (|q| <= 63). ORT's u8 x s8 GEMM on x86 CPUs without VNNI
    adds pairs of products in saturating int16 (vpmaddubsw), which clips with 8-bit weights; 7 bits never
    saturate (ORT's quantize_dynamic has the same option). Measured in docs/quantization.md.
    """
    method: ClassVar[str] = "int8-smooth"
    # fields added after configs of this version were written: what a stored config without them was built
    # with (the standard-op graph, 8-bit weights), not today's defaults (config_from_dict)
    absent_means: ClassVar[dict] = {"fused": False, "reduce_range": False}
    name: str | None = None
    alpha: float = 0.5
    kernel: str = "token"
    block_size: int = 32
    smoothing: bool = False
    smooth_down_proj: bool = True
    outlier_channels: int | None = None
    keep_sensitive: int = 4
    keep_fp32: list = field(default_factory=list)
    calib_texts: int = 128
    calib_max_length: int = 128
    fused: bool = True
    reduce_range: bool = False

    @property
    def outliers(self) -> int:
        """Channels per activation tensor kept in fp32 (the resolved `outlier_channels`)."""
        if self.outlier_channels is None:
            return DEFAULT_OUTLIER_CHANNELS if self.kernel == "token" else 0
        return self.outlier_channels

    def check(self) -> None:
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise InputError(f"alpha={self.alpha} must be in [0, 1]")
        _choice(self.kernel, ("token", "nbits", "integer"), "kernel")
        k = self.outlier_channels
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 0):
            raise InputError(f"outlier_channels={k!r} must be an integer >= 0 (or none for the default)")
        if k and self.kernel != "token":
            raise InputError(f"outlier_channels={k} needs kernel=token (kernel={self.kernel!r} has no fp32 side path)",
                             hint="drop outlier_channels, or use kernel=token")
        if not isinstance(self.keep_sensitive, int) or self.keep_sensitive < 0:
            raise InputError(f"keep_sensitive={self.keep_sensitive!r} must be an integer >= 0")
        for flag in ("fused", "reduce_range"):
            if not isinstance(getattr(self, flag), bool):
                raise InputError(f"{flag}={getattr(self, flag)!r} must be true or false")
        if self.reduce_range and self.kernel != "token":
            raise InputError(f"reduce_range=true needs kernel=token (kernel={self.kernel!r})",
                             hint="drop reduce_range, or use kernel=token")
        _choice(self.block_size, (16, 32, 64, 128, 256), "block_size")
        _check_keep(self.keep_fp32)
        _check_calib(self)


@dataclass
class WeightOnlyConfig(QuantConfig):
    """MatMulNBits weight-only quantization (bits per weight, one scale per block of input channels).

    algorithm: "rtn" (round to nearest), "hqq" (half-quadratic, ORT), "awq" (activation-aware per-channel
    scaling from calibration, folded into the preceding RMSNorm/up_proj, then RTN).
    accuracy_level: 0 = dequantise to fp32; 4 = int8 activations (per token and block) on the int8 kernels.
    keep_8bit (w4 only): MatMul name patterns stored with 8-bit blocks instead of 4 (a 4/8-bit mix, RTN
    for the 8-bit ones); keep_fp32: patterns left unquantized.
    """
    method: ClassVar[str] = ""
    name: str | None = None
    bits: int = 4
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    algorithm: str = "rtn"
    awq_grid: int = 11
    keep_fp32: list = field(default_factory=list)
    keep_8bit: list = field(default_factory=list)
    calib_texts: int = 128
    calib_max_length: int = 128

    def check(self) -> None:
        _choice(self.bits, (4, 8), "bits")
        _check_keep(self.keep_8bit, "keep_8bit")
        if self.keep_8bit and self.bits != 4:
            raise InputError(f"keep_8bit={'+'.join(self.keep_8bit)} needs bits=4 (this variant is {self.bits}-bit)",
                             hint="drop keep_8bit, or use w4")
        _choice(self.block_size, (16, 32, 64, 128, 256), "block_size")
        _choice(self.accuracy_level, (0, 1, 2, 3, 4), "accuracy_level")
        _choice(self.algorithm, ("rtn", "hqq", "awq"), "algorithm")
        if self.algorithm == "hqq" and self.bits != 4:
            raise InputError("algorithm=hqq supports bits=4 only in ONNX Runtime", hint="use rtn or awq for w8")
        if not isinstance(self.awq_grid, int) or self.awq_grid < 2:
            raise InputError(f"awq_grid={self.awq_grid!r} must be an integer >= 2")
        _check_keep(self.keep_fp32)
        _check_calib(self)

    def calibrates(self, method_can: bool) -> bool:
        """Only AWQ looks at activations; rtn / hqq quantize the weights alone (so they also apply to
        artifacts without torch/ weights, e.g. a streamed 8B export)."""
        return method_can and self.algorithm == "awq"


@dataclass
class W8Config(WeightOnlyConfig):
    method: ClassVar[str] = "w8"
    bits: int = 8


@dataclass
class W4Config(WeightOnlyConfig):
    method: ClassVar[str] = "w4"
    bits: int = 4
    algorithm: str = "hqq"  # measured best on SmolLM2 (docs/quantization.md)


@dataclass
class BnbInt8Config(QuantConfig):
    """PyTorch runtime: bitsandbytes LLM.int8() (int8 weights, fp outlier columns above `threshold`)."""
    method: ClassVar[str] = "bnb-int8"
    name: str | None = None
    threshold: float = 6.0


@dataclass
class BnbNf4Config(QuantConfig):
    """PyTorch runtime: bitsandbytes 4-bit NormalFloat weights, fp32 compute."""
    method: ClassVar[str] = "bnb-nf4"
    name: str | None = None
    quant_type: str = "nf4"
    blocksize: int = 64

    def check(self) -> None:
        _choice(self.quant_type, ("nf4", "fp4"), "quant_type")
        _choice(self.blocksize, (64, 128, 256), "blocksize")


@dataclass
class AutoConfig(QuantConfig):
    """Search the fastest int8 mix that holds the gate. For each kernel in `kernels` ("token": per-token
    W8A8 with `outlier_channels`; "nbits": MatMulNBits W8A8 per block), rank decoder layers by measured
    sensitivity (end-to-end cosine drop when only that layer is quantized), then keep the most sensitive
    `k` in fp32, searching k (steps of `step`, then bisection) until recall@10 on the eval set reaches
    `min_recall` (default: the --min-recall of the run, else 0.95). If several kernels pass, the fastest
    at batch 32 wins. The chosen mix and every try go in the manifest."""
    method: ClassVar[str] = "auto"
    name: str | None = None
    alpha: float = 0.5
    smoothing: bool = False
    outlier_channels: int | None = None
    kernels: list = field(default_factory=lambda: ["token", "nbits"])
    min_recall: float | None = None
    step: int = 2
    max_keep: int = 64

    def base(self, keep_sensitive: int = 0, name: str | None = None, kernel: str = "token") -> Int8SmoothConfig:
        """The int8-smooth recipe this search varies (keep_sensitive = layers left in fp32)."""
        return Int8SmoothConfig(name=name, alpha=self.alpha, smoothing=self.smoothing, kernel=kernel,
                                outlier_channels=self.outlier_channels if kernel == "token" else None,
                                keep_sensitive=keep_sensitive)

    def check(self) -> None:
        self.base().check()
        if not isinstance(self.kernels, list) or not self.kernels:
            raise InputError(f"kernels={self.kernels!r} must name at least one kernel",
                             hint="use token, nbits or token+nbits")
        for kernel in self.kernels:
            _choice(kernel, ("token", "nbits"), "kernels")
        if self.min_recall is not None and not 0.0 < float(self.min_recall) <= 1.0:
            raise InputError(f"min_recall={self.min_recall} must be in (0, 1]")
        for key in ("step", "max_keep"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise InputError(f"{key}={getattr(self, key)!r} must be a positive integer")


@dataclass
class TrtConfig(QuantConfig):
    """A TensorRT-ready graph + build plan (variant kind `trt`, named `trt-<precision>`): strongly typed,
    fp32 islands for norms, softmax, pooling and the L2 norm, shape arithmetic folded, no op the
    TensorRT parser lacks. shapes: optimization profiles, `batch=MIN:OPT:MAX,seq=MIN:OPT:MAX[;...]` (set
    with --trt-shapes; default batch 1:16:64, seq 1:min(128,max_length):max_length); workspace_gb: the
    builder's workspace pool; opt_level: builder optimization level (0-5); fp32_residual: keep the
    residual-stream Adds in fp32."""
    method: ClassVar[str] = ""
    precision: ClassVar[str] = ""
    name: str | None = None
    shapes: str | None = None
    workspace_gb: float = 4.0
    opt_level: int = 3
    fp32_residual: bool = False

    def check(self) -> None:
        from l2v.trt.plan import parse_shapes

        if self.shapes is not None:
            parse_shapes(self.shapes)
        if not isinstance(self.workspace_gb, (int, float)) or isinstance(self.workspace_gb, bool) or not 0 < self.workspace_gb <= 1024:
            raise InputError(f"workspace_gb={self.workspace_gb!r} must be a number of GiB in (0, 1024]")
        _choice(self.opt_level, (0, 1, 2, 3, 4, 5), "opt_level")


@dataclass
class TrtFp16Config(TrtConfig):
    method: ClassVar[str] = "trt-fp16"
    precision: ClassVar[str] = "fp16"


@dataclass
class TrtBf16Config(TrtConfig):
    """bf16 keeps the residual stream in fp32 by default (measured: recall@10 0.983 vs 0.97 without)."""
    method: ClassVar[str] = "trt-bf16"
    precision: ClassVar[str] = "bf16"
    fp32_residual: bool = True


@dataclass
class TrtQuantConfig(TrtConfig):
    """Explicit quantization (QuantizeLinear/DequantizeLinear) of the projections on the fp16 graph, in
    TensorRT's form: weights per output channel, activations ONE static scale per tensor (calibration max
    |x| on real text; TensorRT has no per-token scale), zero points 0. outlier_channels: k input channels
    per activation tensor kept in fp16 (a side GEMM); smoothing: fold SmoothQuant scales (alpha) first;
    keep_units: projection groups (arch.py units: a layer's qkv, o, gate_up, down) left in fp16, the most
    sensitive first; None searches the smallest number that reaches min_recall (default: the run's
    --min-recall, else 0.95) on the gate's eval texts, in steps of `step` up to `max_keep`."""
    method: ClassVar[str] = ""
    smoothing: bool = False
    alpha: float = 0.5
    outlier_channels: int = DEFAULT_OUTLIER_CHANNELS
    keep_units: int | None = None
    min_recall: float | None = None
    step: int = 4
    max_keep: int = 64
    calib_texts: int = 128
    calib_max_length: int = 128

    def check(self) -> None:
        super().check()
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise InputError(f"alpha={self.alpha} must be in [0, 1]")
        for key in ("outlier_channels", "keep_units"):
            _check_count(getattr(self, key), key, 0, optional=True)
        if self.min_recall is not None and not 0.0 < float(self.min_recall) <= 1.0:
            raise InputError(f"min_recall={self.min_recall} must be in (0, 1]")
        for key in ("step", "max_keep"):
            _check_count(getattr(self, key), key, 1)
        _check_calib(self)


@dataclass
class TrtInt8Config(TrtQuantConfig):
    method: ClassVar[str] = "trt-int8"
    precision: ClassVar[str] = "int8"


@dataclass
class TrtFp8Config(TrtQuantConfig):
    method: ClassVar[str] = "trt-fp8"
    precision: ClassVar[str] = "fp8"


TRT_PRECISIONS = ("fp16", "bf16", "int8", "fp8")


def trt_config(precision: str, shapes: str | None = None) -> TrtConfig:
    """The config of `--trt --trt-precision P [--trt-shapes S]`."""
    _choice(precision, TRT_PRECISIONS, "--trt-precision")
    cfg = CONFIGS[f"trt-{precision}"](shapes=shapes)
    cfg.check()
    return cfg


@dataclass
class OvFp32Config(QuantConfig):
    """The reference ONNX graph converted to OpenVINO IR (`openvino.convert_model`), fp32 weights and
    compute: the same numbers as ONNX Runtime's fp32 (checked at build: min cosine >= 0.99999), run by
    OpenVINO's CPU plugin (kind `openvino`, optional extra `l2v-export[openvino]`)."""
    method: ClassVar[str] = "ov-fp32"
    name: str | None = None


@dataclass
class OvBf16Config(QuantConfig):
    """The `ov-fp32` IR (fp32 weights in the file), compiled with `INFERENCE_PRECISION_HINT=bf16`: the CPU
    plugin runs its float ops in bf16 (weights converted at compile); fast where the CPU has bf16 arithmetic
    (AVX512-BF16 or AMX). The build records the precisions the plugin ran at the gate; where it runs others
    (f32 on CPUs without AVX-512), the load warns. Measured on a 2-core AVX512-BF16 EPYC: docs/quantization.md."""
    method: ClassVar[str] = "ov-bf16"
    name: str | None = None


@dataclass
class OvInt8Config(QuantConfig):
    """int8 OpenVINO IR made with NNCF from the reference graph (kind `openvino`).

    mode="ptq" (default): `nncf.quantize` on the calibration texts (`calib_texts` texts, batch 1, at most
    `calib_max_length` tokens): int8 weights per output channel x int8 activations with *static* scales
    (one per tensor, from calibration), as FakeQuantize nodes that the CPU plugin fuses into int8
    MatMuls; `smoothquant_alpha` (None: off) is NNCF's SmoothQuant for MatMuls; `preset` performance
    (symmetric activations) or mixed (asymmetric). The `keep_sensitive` most sensitive decoder layers
    (l2v's end-to-end ranking, with per-tensor int8 activations as the arithmetic) and the MatMuls
    matching `keep_fp32` go in NNCF's ignored scope and stay fp32. Only projection (weight) MatMuls are
    quantized: the activation x activation MatMuls (attention scores Q·K^T and P·V) go in the ignored
    scope too: NNCF's transformer preset quantizes Q·K^T with one static scale per tensor for Q and for K
    (on SmolLM2-135M keeping them fp32 moved the gate's recall@10 only from 0.704 to 0.724: the projections'
    per-tensor activation scales are the larger loss); `quantize_attention=true` leaves them to NNCF.
    mode="accuracy": `nncf.quantize_with_accuracy_control` on top of that: NNCF reverts quantized
    operations to fp32, most harmful first, until recall@10 against the reference on the gate's eval
    texts (the gate's own metric and batches) drops by at most `max_drop` (default: 1 - --min-recall,
    else 0.05), in at most `max_iterations` rounds; NNCF ranks the operations on `ranking_batches` of
    the eval batches.
    mode="weights": `nncf.compress_weights` INT8_SYM (int8 weights per output channel, no activation
    quantization at build; the CPU plugin decides at run time whether to quantize activations).
    `weights` (mode="weights" only): "sym" (INT8_SYM, one scale per output channel) or "asym" (INT8_ASYM: a
    zero point per output channel too; on SmolLM2-135M it raised the gate's recall@10 from 0.869 to 0.879).
    `compute`: the precision of the float ops the CPU plugin runs ("f32", or "bf16" as in `ov-bf16`).
    `dynamic_group` (mode="weights" only): the plugin's `DYNAMIC_QUANTIZATION_GROUP_SIZE` at load; None leaves
    the plugin's default (with VNNI it quantizes the int8-weight matmuls' activations at run time, per token
    and per 32 input channels), 0 turns that off: the weights are decompressed into `compute`'s precision
    (weight-only int8, the most accurate; with compute="bf16" also the fastest at batch 32 on AVX512-BF16).
    """
    method: ClassVar[str] = "ov-int8"
    name: str | None = None
    mode: str = "ptq"
    smoothquant_alpha: float | None = 0.95
    preset: str = "performance"
    keep_sensitive: int = 4
    keep_fp32: list = field(default_factory=list)
    quantize_attention: bool = False
    weights: str = "sym"
    compute: str = "f32"
    dynamic_group: int | None = None
    calib_texts: int = 300
    calib_max_length: int = 128
    max_drop: float | None = None
    max_iterations: int = 16
    ranking_batches: int = 2

    def check(self) -> None:
        _choice(self.mode, ("ptq", "accuracy", "weights"), "mode")
        _choice(self.preset, ("performance", "mixed"), "preset")
        _choice(self.weights, ("sym", "asym"), "weights")
        a = self.smoothquant_alpha
        if a is not None and not 0.0 < float(a) <= 1.0:
            raise InputError(f"smoothquant_alpha={a} must be in (0, 1], or none to turn SmoothQuant off")
        if self.weights != "sym" and self.mode != "weights":
            raise InputError(f"weights={self.weights!r} needs mode=weights (static PTQ's weights are symmetric)",
                             hint="drop weights, or use mode=weights")
        from l2v.runtime.openvino import PRECISIONS  # what the backend compiles with (imports no openvino)

        _choice(self.compute, PRECISIONS, "compute")
        _check_count(self.dynamic_group, "dynamic_group", 0, optional=True)
        if self.dynamic_group is not None and self.mode != "weights":
            raise InputError(f"dynamic_group={self.dynamic_group} needs mode=weights (static int8 quantizes its "
                             "activations at build, not at run time)", hint="drop dynamic_group, or use mode=weights")
        _check_count(self.keep_sensitive, "keep_sensitive", 0)
        _check_keep(self.keep_fp32)
        _check_calib(self)
        if self.max_drop is not None and not 0.0 < float(self.max_drop) < 1.0:
            raise InputError(f"max_drop={self.max_drop} must be in (0, 1) (an absolute drop of recall@10)")
        for key in ("max_iterations", "ranking_batches"):
            _check_count(getattr(self, key), key, 1)
        if not isinstance(self.quantize_attention, bool):
            raise InputError(f"quantize_attention={self.quantize_attention!r} must be true or false")
        if self.mode == "weights" and self.quantize_attention:
            raise InputError("quantize_attention=true needs mode=ptq or mode=accuracy (mode='weights' quantizes "
                             "no activations)", hint="drop quantize_attention")
        if self.mode != "accuracy" and self.max_drop is not None:
            raise InputError(f"max_drop={self.max_drop} needs mode=accuracy (mode={self.mode!r})",
                             hint="drop max_drop, or use mode=accuracy")


def _check_calib(cfg) -> None:
    if not isinstance(cfg.calib_texts, int) or cfg.calib_texts < 1:
        raise InputError(f"calib_texts={cfg.calib_texts!r} must be a positive integer")
    if not isinstance(cfg.calib_max_length, int) or cfg.calib_max_length < 2:
        raise InputError(f"calib_max_length={cfg.calib_max_length!r} must be an integer >= 2")


OV_FAMILIES = ("bf16", "w8-bf16", "w8")  # ov-auto's candidate recipes (OvAutoConfig.candidate)


@dataclass
class OvAutoConfig(QuantConfig):
    """Search the fastest OpenVINO CPU variant that holds the gate (kind `openvino`). Candidate recipes
    (`families`): "bf16" (= ov-bf16), "w8-bf16" (ov-int8 mode=weights, asymmetric int8 weights decompressed
    into bf16 float ops, no run-time activation int8: `compute=bf16,dynamic_group=0`) and "w8" (asymmetric
    int8 weights, fp32 float ops, the plugin's own run-time activation int8 where the CPU has VNNI). For
    the int8 recipes the `k` most sensitive decoder layers stay unquantized, k searched as in `auto`
    (0, step, 2*step, 4*step, ..., then bisection). The bf16 recipes are skipped on CPUs without bf16
    arithmetic (the plugin would run them in f32). Of the passing candidates the fastest at batch 32 on
    the gate's speed batch wins (timed interleaved in one process); if none passes, the most faithful
    (a --min-recall gate then refuses it). Every try and the equivalent ov-bf16 / ov-int8 spec go in the
    manifest."""
    method: ClassVar[str] = "ov-auto"
    name: str | None = None
    families: list = field(default_factory=lambda: list(OV_FAMILIES))
    min_recall: float | None = None
    step: int = 2
    max_keep: int = 64

    def candidate(self, family: str, keep_sensitive: int = 0) -> QuantConfig:
        """The ov-bf16 / ov-int8 config a family stands for, with `keep_sensitive` layers unquantized."""
        if family == "bf16":
            return OvBf16Config(name=self.variant)
        extra = {"compute": "bf16", "dynamic_group": 0} if family == "w8-bf16" else {}
        return OvInt8Config(name=self.variant, mode="weights", weights="asym", keep_sensitive=keep_sensitive, **extra)

    def check(self) -> None:
        if not isinstance(self.families, list) or not self.families:
            raise InputError(f"families={self.families!r} must name at least one recipe",
                             hint=f"use e.g. {'+'.join(OV_FAMILIES)}")
        for family in self.families:
            _choice(family, OV_FAMILIES, "families")
        if self.min_recall is not None and not 0.0 < float(self.min_recall) <= 1.0:
            raise InputError(f"min_recall={self.min_recall} must be in (0, 1]")
        _check_count(self.step, "step", 1)
        _check_count(self.max_keep, "max_keep", 1)


CONFIGS: dict[str, type[QuantConfig]] = {c.method: c for c in (
    Fp16Config, Bf16Config, Int8DynamicConfig, Int8SmoothConfig, W8Config, W4Config, BnbInt8Config,
    BnbNf4Config, AutoConfig, TrtFp16Config, TrtBf16Config, TrtInt8Config, TrtFp8Config, OvFp32Config,
    OvBf16Config, OvInt8Config, OvAutoConfig)}


def _coerce(value: str, annotation, key: str):
    text = str(annotation)
    if text in ("bool",):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{key}={value!r} is not a boolean", hint="use true or false")
    if text == "list":
        return [v for v in value.split("+") if v]
    try:
        if text == "int":
            return int(value)
        if text == "int | None":
            return None if value.lower() == "none" else int(value)
        if text == "float" or text == "float | None":
            return None if value.lower() == "none" else float(value)
    except ValueError as e:
        raise InputError(f"{key}={value!r} is not a {text}") from e
    return None if value.lower() == "none" else value


def config_class(method: str) -> type[QuantConfig]:
    if method not in CONFIGS:
        raise InputError(f"unknown quantization method {method!r}", hint=f"use one of {', '.join(CONFIGS)}")
    return CONFIGS[method]


def parse_method(spec) -> QuantConfig:
    """`"w4"`, `"w4:block_size=64,algorithm=hqq"` (lists joined with '+': `keep_fp32=down_proj+o_proj`),
    or a ready QuantConfig."""
    if isinstance(spec, QuantConfig):
        spec.check()
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"--quant {spec!r} is not a method name")
    method, _, opts = spec.strip().partition(":")
    cls = config_class(method)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in known:
            raise InputError(f"--quant {spec!r}: bad option {item!r}",
                             hint=f"options of {method}: {', '.join(sorted(known))}")
        ann = hints[key]
        kwargs[key] = _coerce(value.strip(), getattr(ann, "__name__", None) or str(ann), key)
    cfg = cls(**kwargs)
    cfg.check()
    return cfg


def config_from_dict(data: dict) -> QuantConfig:
    """Read a config back from the manifest; refuses unknown versions and fields."""
    if not isinstance(data, dict) or "method" not in data:
        raise InputError("a quantization config must be an object with a 'method'")
    if data.get("version") != CONFIG_VERSION:
        raise InputError(f"quantization config version {data.get('version')!r} is not supported",
                         hint=f"this l2v reads version {CONFIG_VERSION}")
    cls = config_class(data["method"])
    body = {**getattr(cls, "absent_means", {}), **{k: v for k, v in data.items() if k not in ("method", "version")}}
    known = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(body) - known)
    if extra:
        raise InputError(f"unknown fields {extra} in a {data['method']} config")
    cfg = cls(**body)
    cfg.check()
    return cfg
