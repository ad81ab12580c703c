"""This machine's matmul peak, measured in the same run: square GEMMs per dtype and library.

torch: fp32, bf16, fp16 (`a @ b`) and int8 (`torch._int_mm`, int32 accumulate) where the device has it.
onnxruntime: fp32 `MatMul` and int8 `MatMulInteger` with uint8 activations x int8 weights (u8s8, the
form ONNX Runtime's dynamic quantization emits and MLAS's fast path).
openvino: an activation x constant-weight MatMul (the CPU plugin's FullyConnected, what a projection runs)
compiled at f32 and at bf16 (`INFERENCE_PRECISION_HINT`; bf16 kernels need AVX512-BF16 or AMX).
The best of the timed repeats is the peak (the least disturbed run).
"""
from __future__ import annotations

import time

# fp16 GEMM on x86 CPUs without AVX512-FP16 runs at well under 1 GFLOP/s: probed on GPUs only.
TORCH_DTYPES = {"cpu": ("fp32", "bf16", "int8"), "cuda": ("fp32", "bf16", "fp16", "int8")}
ORT_DTYPES = ("fp32", "int8")


def _best_rate(fn, flops: float, seconds: float) -> tuple[float, int]:
    """Best of the timed repeats: at least one, three unless they pass 3x `seconds`, up to 50 within `seconds`.
    A GEMM with no fast path on this CPU (bf16 without AVX512-BF16: ~2 s at 1024^3) is timed once, by its
    warm-up call, instead of four calls: a quick run spent ~25 s per probe on a figure that is no ceiling."""
    t0 = time.perf_counter()
    fn()  # warm-up; a call slower than 3x the budget is its own (only) repeat: nothing to warm up for
    first = time.perf_counter() - t0
    if first > 3 * seconds:
        return flops / first, 1
    best, n, spent = float("inf"), 0, 0.0
    while n < 1 or (n < 3 and spent < 3 * seconds) or (spent < seconds and n < 50):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, n, spent = min(best, dt), n + 1, spent + dt
    return flops / best, n


def torch_peak(dtype: str, device: str = "cpu", size: int = 1024, seconds: float = 0.5) -> dict:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if dtype == "int8":
        a = torch.randint(-128, 127, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-128, 127, (size, size), dtype=torch.int8, device=device)

        def fn():
            torch._int_mm(a, b)
            sync()
    else:
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        a = torch.randn(size, size, device=device).to(dt)
        b = torch.randn(size, size, device=device).to(dt)

        def fn():
            torch.matmul(a, b)
            sync()
    rate, n = _best_rate(fn, 2.0 * size ** 3, seconds)
    return {"library": "torch", "dtype": dtype, "flops_per_s": rate, "size": size, "n": n}


def _ort_matmul_model(int8: bool, size: int):
    from onnx import TensorProto, helper

    a_type = TensorProto.UINT8 if int8 else TensorProto.FLOAT
    b_type = TensorProto.INT8 if int8 else TensorProto.FLOAT
    out = TensorProto.INT32 if int8 else TensorProto.FLOAT
    node = helper.make_node("MatMulInteger" if int8 else "MatMul", ["a", "b"], ["c"])
    graph = helper.make_graph([node], "probe", [helper.make_tensor_value_info("a", a_type, [size, size]),
                                                helper.make_tensor_value_info("b", b_type, [size, size])],
                              [helper.make_tensor_value_info("c", out, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort_peak(dtype: str, threads: int | None = None, size: int = 1024, seconds: float = 0.5,
             providers=None) -> dict:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(_ort_matmul_model(dtype == "int8", size), sess_options=opts,
                                providers=providers or ["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if dtype == "int8":
        a = rng.integers(0, 255, (size, size), dtype=np.uint8)
        b = rng.integers(-128, 127, (size, size), dtype=np.int8)
    else:
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    rate, n = _best_rate(lambda: sess.run(None, {"a": a, "b": b}), 2.0 * size ** 3, seconds)
    return {"library": "onnxruntime", "dtype": dtype, "flops_per_s": rate, "size": size, "n": n}


def ov_peak(dtype: str, threads: int | None = None, size: int = 1024, seconds: float = 0.5) -> dict:
    """OpenVINO CPU plugin FullyConnected (activations [size, size] x constant weights [size, size]) at
    `dtype` "fp32" or "bf16", compiled as l2v compiles its variants (LATENCY)."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    from l2v.runtime.openvino import compile_model, compiled_properties

    rng = np.random.default_rng(0)
    a = ops.parameter([size, size], ov.Type.f32, name="a")
    w = ops.constant(rng.standard_normal((size, size), dtype=np.float32))
    compiled = compile_model(ov.Model([ops.matmul(a, w, False, False)], [a], "probe"), threads,
                             precision={"fp32": "f32", "bf16": "bf16"}[dtype])
    req = compiled.create_infer_request()
    x = rng.standard_normal((size, size), dtype=np.float32)
    rate, n = _best_rate(lambda: req.infer({0: x}), 2.0 * size ** 3, seconds)
    ran = compiled_properties(compiled)["INFERENCE_PRECISION_HINT"]  # "f32" where the CPU cannot run bf16
    return {"library": "openvino", "dtype": dtype, "flops_per_s": rate, "size": size, "n": n, "ran": ran}
