"""Weight-free ONNX export, then the weights streamed into external data one tensor at a time.

1. `trace(encoder, spec)`: `torch.onnx.export(dynamo=True, optimize=False)` of a fake-weight
   `EmbeddingModel` (l2v.model.fake) -> an `onnx_ir.Model` whose weight initializers wrap FakeTensors.
2. `optimize_without_weights(model, names)`: the exporter's own optimizer (onnxscript `optimize_ir`, what
   `optimize=True` runs), with the weights detached as graph inputs for its duration, so no pass can read
   a weight (constant folding and deduplication see only real constants).
3. `fold_weight_transposes(model, names)`: `Transpose(W) -> MatMul` becomes `MatMul(W^T)` with W^T written
   pre-transposed, as the in-memory export's optimizer folds it; ONNX Runtime then has nothing to fold
   (and copy) when it opens the graph.
4. `bind_weights(model, weights, dtype, transposed)` + `save(model, path)`: each weight initializer
   becomes a lazy tensor that merges / casts / transposes ONE checkpoint tensor when `onnx_ir.save`
   reaches it (the embedding is copied in row blocks), written into `<graph>.data` page-aligned.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

PREFIX = "backbone."  # EmbeddingModel's attribute holding the backbone
ROW_BLOCK_BYTES = 64 << 20  # unmerged 2-D tensors are copied in row blocks of about this size
ALIGNMENT = 4096


def sample_inputs(spec) -> tuple:
    """Two rows, one padded: what the tracer needs (shapes are dynamic; values never matter)."""
    import torch

    ids = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 2]], dtype=torch.int64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "pooling_mask": mask.clone()}
    return tuple(feeds[n] for n in spec.inputs)


def trace(encoder, spec, verbose: bool = False):
    """The `onnx_ir.Model` of `encoder` (fake weights), with the spec's names and dynamic axes."""
    import torch

    from l2v.export.onnx_export import _quiet_exporter

    with torch.no_grad(), _quiet_exporter(verbose):
        program = torch.onnx.export(
            encoder, sample_inputs(spec), dynamo=True, opset_version=spec.opset, input_names=list(spec.inputs),
            output_names=[spec.output], dynamic_shapes=spec.dynamic_shapes(), optimize=False, verbose=False)
    return program.model


def weight_names(model) -> list[str]:
    """Initializers still backed by FakeTensors: the backbone's parameters."""
    from torch._subclasses.fake_tensor import FakeTensor

    return [v.name for v in model.graph.initializers.values()
            if isinstance(getattr(v.const_value, "raw", None), FakeTensor)]


def optimize_without_weights(model, names: list[str]) -> None:
    """Run the exporter's optimizer with the weights detached (graph inputs without values)."""
    from onnxscript import optimizer

    g = model.graph
    detached = []
    for name in names:
        v = g.initializers.pop(name)
        detached.append((v, v.const_value))
        v.const_value = None
        g.inputs.append(v)
    try:
        optimizer.optimize_ir(model)
    finally:
        for v, tensor in detached:
            g.inputs.remove(v)
            v.const_value = tensor
            g.register_initializer(v)


def fold_weight_transposes(model, names: list[str]) -> set[str]:
    """Replace `Transpose(perm=[1,0])(W)` feeding only MatMuls by W stored transposed; returns those names."""
    import onnx_ir as ir

    g = model.graph
    done = set()
    for name in names:
        v = g.initializers[name]
        uses = list(v.uses())
        if not uses or v.shape is None or len(v.shape) != 2:
            continue
        nodes = [u.node for u in uses]
        if not all(n.op_type == "Transpose" and list(n.attributes.get_ints("perm", [1, 0])) == [1, 0] for n in nodes):
            continue
        for n in nodes:
            ir.convenience.replace_all_uses_with(n.outputs[0], v)
            g.remove(n, safe=True)
        v.shape = ir.Shape([v.shape[1], v.shape[0]])
        done.add(name)
    return done


def build_graph(config, dtype: str, spec, pooling: str, normalize: bool, causal: bool, dim: int | None,
                timings: dict | None = None, verbose: bool = False):
    """(onnx_ir model with fake weights, weight initializer names, names stored transposed)."""
    from l2v.model.fake import fake_encoder
    from l2v.model.precision import fp32_scores

    timings = {} if timings is None else timings
    t = time.perf_counter()
    encoder = fake_encoder(config, dtype, pooling, normalize, causal, dim)
    with fp32_scores(encoder, dtype):
        model = trace(encoder, spec, verbose)
    names = weight_names(model)
    timings["trace_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    optimize_without_weights(model, names)
    transposed = fold_weight_transposes(model, names)
    timings["optimize_s"] = round(time.perf_counter() - t, 1)
    return model, names, transposed


def to_numpy(t) -> np.ndarray:
    """A contiguous CPU tensor as numpy (bf16 through ml_dtypes, which onnx_ir writes as BFLOAT16)."""
    import torch

    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def write_array(fh, arr: np.ndarray) -> None:
    fh.write(memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)))


def copy_rows(fh, weights, key: str, tdtype) -> None:
    """A 2-D tensor written in row blocks of ~64 MiB (the 128k x 4k embedding is never whole in memory)."""
    rows, cols = weights.shape(key)
    step = max(1, ROW_BLOCK_BYTES // (cols * 4))
    for start in range(0, rows, step):
        write_array(fh, to_numpy(weights.get_rows(key, start, min(rows, start + step), tdtype)))


def streamed_tensor(weights, key: str, dtype: str, transpose: bool, value):
    """A lazy onnx_ir tensor: `weights.get(key, dtype)` (merged, cast; transposed) when the writer asks."""
    import onnx_ir as ir

    from l2v.model.fake import torch_dtype

    tdtype = torch_dtype(dtype)

    def materialize():
        t = weights.get(key, tdtype)
        return ir.Tensor(to_numpy(t.T if transpose else t), name=value.name)

    class _Streamed(ir.LazyTensor):
        def tofile(self, fh):
            if transpose or weights.is_merged(key) or len(weights.shape(key)) != 2:
                write_array(fh, materialize().numpy())
            else:
                copy_rows(fh, weights, key, tdtype)

    return _Streamed(materialize, dtype=value.dtype, shape=value.shape, name=value.name)


def bind_weights(model, weights, dtype: str, transposed: set[str] = frozenset()) -> int:
    """Point every fake weight initializer at its streamed tensor; returns the bytes they will take."""
    from l2v.errors import ModelLoadError

    total = 0
    have = set(weights.names())
    for name in weight_names(model):
        key = name.removeprefix(PREFIX)
        if key not in have:
            raise ModelLoadError(f"the graph needs weight {key!r}, which the checkpoint does not hold")
        v = model.graph.initializers[name]
        v.const_value = streamed_tensor(weights, key, dtype, name in transposed, v)
        total += v.const_value.nbytes
    return total


def save(model, path: Path, progress=None) -> list[str]:
    """Write `path` and `path.data` (every initializer of 1 KiB or more, page-aligned), one tensor at a
    time. `progress(done, total)` after each tensor. Returns the file names."""
    import onnx_ir as ir

    path = Path(path)

    def callback(tensor, info) -> None:
        if progress:
            progress(info.index + 1, info.total)

    ir.save(model, str(path), external_data=f"{path.name}.data", size_threshold_bytes=1024, alignment=ALIGNMENT,
            callback=callback)
    return [path.name, f"{path.name}.data"]
