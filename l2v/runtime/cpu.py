"""What this CPU does with ONNX Runtime's u8 x s8 int8 GEMM, and the load-time note it calls for.

On x86 without VNNI, MLAS multiplies u8 x s8 pairs with `vpmaddubsw`, whose int16 sums saturate: with 8-bit
weights the products are off by 0.6-2.0 % RMS from the exact integers (bench/results/u8s8_saturation.md),
and 7-bit weights (int8-smooth:reduce_range=true) are exact. VNNI (`vpdpbusd`, AVX512-VNNI / AVX-VNNI / AMX)
accumulates in int32 and does not saturate. The recall gate measures the variant on the machine that builds
it, so a variant gated where the GEMM is exact and run where it saturates may recall less than its gate said:
`load` says so once.

OpenVINO's CPU plugin also decides per CPU what an int8 IR runs. With int8 weights only (`ov-int8:mode=weights`)
it quantized activations at run time (groups of 32) on the AVX-512 VNNI CPU measured, and computed in fp32 on
the AVX2 CPU without VNNI (there DYNAMIC_QUANTIZATION_GROUP_SIZE=0 gave the same vectors); docs/quantization.md.
The build records the precisions the plugin reported (`facts.runtime_precisions`); `load` says so when this
CPU's differ, or when such a variant gated without VNNI runs with it.
"""
from __future__ import annotations

import platform
from pathlib import Path

U8S8_OPS = ("MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
SATURATING = "x86 without VNNI (int16 sums, saturating)"
EXACT = "x86 with VNNI (int32 sums)"


def _cpuinfo(key: str) -> str | None:
    """The value of the first `key` line of /proc/cpuinfo; None without the file or the line."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def describe() -> dict:
    """What the gate records of the CPU it measured on."""
    return {"name": cpu_name(), "int8_gemm": int8_gemm()}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (/proc/cpuinfo); None where there is no such file."""
    flags = _cpuinfo("flags")
    return None if flags is None else set(flags.split())


def flags_of_note() -> list[str]:
    """The flags that decide float and int8 GEMM speed (avx2, fma, avx512*, *vnni*, amx*), sorted, for reports;
    [] where there is no /proc/cpuinfo."""
    return sorted(f for f in cpu_flags() or () if "vnni" in f or f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))


def bf16_arithmetic(flags: set[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16): where bf16 float ops pay off."""
    return bool({"avx512_bf16", "amx_bf16"} & ((cpu_flags() if flags is None else flags) or set()))


def int8_gemm(flags: set[str] | None = None) -> str | None:
    """SATURATING, EXACT, or None where this module does not know (non-x86, no /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    return EXACT if flags & set(VNNI_FLAGS) else SATURATING


def uses_8bit_u8s8(variant) -> bool:
    """The variant (a manifest `Variant`) runs ORT's u8 x s8 GEMM with 8-bit weights: its graph has those ops
    and its config is not int8-smooth's reduce_range (7-bit weights are exact on every x86 CPU)."""
    ops = (variant.facts or {}).get("quant_ops") or {}
    return any(ops.get(op) for op in U8S8_OPS) and not (variant.quant or {}).get("reduce_range", False)


def saturation_note(name: str, variant, here: str | None = None) -> str | None:
    """The note for loading variant `name` on this CPU, or None when there is nothing to say."""
    here = int8_gemm() if here is None else here
    gate = variant.gate or {}
    gated_on = (gate.get("cpu") or {}).get("int8_gemm")
    if here != SATURATING or gated_on in (None, SATURATING) or not uses_8bit_u8s8(variant):
        return None
    return (f"variant {name!r} was gated on a CPU whose int8 GEMM is exact ({gated_on}; recall@10 "
            f"{gate.get('recall@10')}); this CPU is {SATURATING}: ONNX Runtime's u8 x s8 products with 8-bit "
            "weights are off by ~1-2 % RMS here, so recall may be below the gate's. Rebuild it here (the gate "
            "then measures this CPU), or with int8-smooth:reduce_range=true (7-bit weights, exact on every x86 CPU)")


def plugin_note(name: str, variant, here: dict | None, here_gemm: str | None = None) -> str | None:
    """The note for loading OpenVINO variant `name` where the CPU plugin may run it otherwise than on the CPU
    that gated it, or None. Two signs: the plugin reports other precisions for its matmuls here (`here`:
    {"FullyConnected:i8": n, ...}) than at the build (`facts.runtime_precisions`); or an int8-weights-only
    variant (`ov-int8:mode=weights`) gated without VNNI, where the plugin computes those matmuls in fp32 (the
    vectors equal DYNAMIC_QUANTIZATION_GROUP_SIZE=0's), runs here with VNNI, where it also quantizes their
    activations at run time (groups of 32), unless the variant turned that off (`dynamic_group=0`). The reverse
    directions only raise recall, and are not noted."""
    gate = variant.gate or {}
    built = (variant.facts or {}).get("runtime_precisions")
    reasons = []
    if built and here and built != here:
        reasons.append(f"OpenVINO ran its matmuls as {built} there and runs them as {here} here")
    quant = variant.quant or {}
    from l2v.runtime.openvino import plugin_of  # imports no openvino

    runtime_int8 = plugin_of(variant).get("DYNAMIC_QUANTIZATION_GROUP_SIZE") != 0
    if (quant.get("method"), quant.get("mode")) == ("ov-int8", "weights") and runtime_int8 \
            and (gate.get("cpu") or {}).get("int8_gemm") == SATURATING \
            and (int8_gemm() if here_gemm is None else here_gemm) == EXACT:
        reasons.append("it was gated without VNNI, where OpenVINO computes its int8-weight matmuls in fp32; this "
                       "CPU has VNNI, where OpenVINO also quantizes their activations at run time (groups of 32)")
    if not reasons:
        return None
    where = (gate.get("cpu") or {}).get("name") or "the building CPU"
    return (f"variant {name!r} was gated on {where} (recall@10 {gate.get('recall@10')}): {'; '.join(reasons)}, so "
            "its recall and speed may differ from the gate's. Rebuild it here (l2v-quantize ARTIFACT --quant ... "
            "--overwrite) for a gate that measured this CPU")
