"""Weight sources: a model's tensors one at a time, under the backbone's (`AutoModel`) names.

`open_weights(source)` gives a `WeightSource` for a `ModelSource`:
- `SafetensorsWeights`: a Hugging Face directory, sharded (`model.safetensors.index.json`) or single
  (`model.safetensors`). Tensors are read with plain reads into fresh buffers, never through a memory
  map: a process that streams a 16 GB checkpoint then holds only the tensors alive in Python, not the
  shard pages it went through (with `safe_open`'s mmap those count in its RSS; measured 3.6 vs 2.2 GiB).
- `GgufWeights`: a `.gguf` file, dequantised tensor by tensor (row blocks for the embedding) with the
  same functions and the same llama.cpp-undoing transforms as transformers' GGUF loader, so the fp32
  values are those `AutoModel.from_pretrained(gguf_file=...)` would hold.

Interface (both): `names()`, `shape(name)`, `dtype(name)` (a torch dtype), `get(name)` (the whole tensor
in its stored dtype; GGUF: float32), `get_rows(name, start, stop)` (rows of a 2-D tensor), `nbytes()`.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from l2v.errors import ModelLoadError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
ST_TORCH = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64", "I64": "int64",
            "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
ROW_BLOCK_ELEMENTS = 1 << 24  # GGUF rows are dequantised at most this many values at a time


def expected_names(config) -> dict[str, tuple[int, ...]]:
    """{name: shape} of every parameter and persistent buffer of the backbone, from its config alone
    (built on the meta device: no memory)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _read_exact(path: Path, offset: int, nbytes: int, what: str):
    """`nbytes` from `path` at `offset` into a fresh uint8 tensor (plain reads: no mmap)."""
    import torch

    buf = torch.empty(nbytes, dtype=torch.uint8)
    view, got = memoryview(buf.numpy()), 0
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset)
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise ModelLoadError(f"{path.name} is truncated at {what}", hint="re-download the model")
            got += n
    return buf


class SafetensorsFile:
    """One safetensors file: its header, and tensors read on demand."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, struct.error, ValueError) as e:
            raise ModelLoadError(f"cannot read the safetensors header of {str(self.path)!r}: {e}",
                                 hint="the file is damaged; re-download the model") from e
        header.pop("__metadata__", None)
        self.data_start, self.tensors = 8 + n, header

    def keys(self) -> list[str]:
        return list(self.tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.tensors[key]["shape"])

    def dtype(self, key: str):
        import torch

        return getattr(torch, ST_TORCH[self.tensors[key]["dtype"]])

    def _read(self, key: str, start_byte: int, nbytes: int, shape):
        lo = self.tensors[key]["data_offsets"][0]
        buf = _read_exact(self.path, self.data_start + lo + start_byte, nbytes, f"tensor {key!r}")
        return buf.view(self.dtype(key)).reshape(shape)

    def get(self, key: str):
        lo, hi = self.tensors[key]["data_offsets"]
        return self._read(key, 0, hi - lo, self.shape(key))

    def get_rows(self, key: str, start: int, stop: int):
        shape = self.shape(key)
        lo, hi = self.tensors[key]["data_offsets"]
        row = (hi - lo) // shape[0]
        return self._read(key, start * row, (stop - start) * row, (stop - start, *shape[1:]))


class SafetensorsWeights:
    """A Hugging Face directory's safetensors, tensor by tensor, under the backbone's names."""

    def __init__(self, path, config=None):
        self.path = Path(path)
        index = self.path / INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
        elif (self.path / SINGLE).is_file():
            weight_map = {k: SINGLE for k in SafetensorsFile(self.path / SINGLE).keys()}
        else:
            raise ModelLoadError(f"{str(self.path)!r} has neither {INDEX} nor {SINGLE}",
                                 hint="streaming needs safetensors weights (save_pretrained(safe_serialization=True))")
        self._files: dict[str, SafetensorsFile] = {}
        self._where: dict[str, tuple[str, str]] = {}
        for key, shard in weight_map.items():
            self._where[key.removeprefix("model.")] = (shard, key)
        if config is not None:
            self._restrict(expected_names(config))

    def _restrict(self, expected: dict) -> None:
        """Keep the backbone's tensors (drop lm_head, stale rotary buffers); refuse a missing or misshapen one."""
        missing = [n for n in expected if n not in self._where]
        if missing:
            raise ModelLoadError(f"the checkpoint in {str(self.path)!r} lacks {missing[0]!r}"
                                 + (f" and {len(missing) - 1} more tensors" if len(missing) > 1 else ""),
                                 hint="the weights do not match config.json")
        self._where = {n: self._where[n] for n in expected}
        for n, shape in expected.items():
            if self.shape(n) != shape:
                raise ModelLoadError(f"tensor {n!r} has shape {self.shape(n)} in the checkpoint, config.json "
                                     f"implies {shape}", hint="the weights do not match config.json")

    def _file(self, shard: str) -> SafetensorsFile:
        if shard not in self._files:
            self._files[shard] = SafetensorsFile(self.path / shard)
        return self._files[shard]

    def names(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        shard, key = self._where[name]
        return self._file(shard).shape(key)

    def dtype(self, name: str):
        shard, key = self._where[name]
        return self._file(shard).dtype(key)

    def get(self, name: str):
        shard, key = self._where[name]
        return self._file(shard).get(key)

    def get_rows(self, name: str, start: int, stop: int):
        shard, key = self._where[name]
        return self._file(shard).get_rows(key, start, stop)

    def nbytes(self) -> int:
        return sum(_numel(self.shape(n)) * _itemsize(self.dtype(n)) for n in self.names())


class GgufWeights:
    """A GGUF file dequantised tensor by tensor, as transformers' GGUF loader does it for the whole model:
    `gguf.dequantize` -> the architecture's `TensorProcessor` (llama: q/k rows un-permuted; gemma2/3: norms
    minus 1) -> float32 under the backbone's names (`get_gguf_hf_weights_map`)."""

    def __init__(self, path, config):
        from gguf import GGUFReader
        from transformers.modeling_gguf_pytorch_utils import (TENSOR_PROCESSORS, TensorProcessor,
                                                              get_gguf_hf_weights_map, read_field)

        self.path = Path(path)
        reader = GGUFReader(str(self.path))  # memory-maps only to parse the tensor table: no data is read
        arch = read_field(reader, "general.architecture")[0]
        # the processors read head counts under the config's own names (what the GGUF metadata maps to)
        self.processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=config.to_dict())
        import torch
        from transformers import AutoModel

        with torch.device("meta"):
            meta = AutoModel.from_config(config)
        to_hf = get_gguf_hf_weights_map(meta, self.processor)
        expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        self._tensors = {}
        for t in reader.tensors:
            # the processor may rename (MoE); the dense families keep the name
            name = to_hf.get(t.name)
            if name in expected:
                self._tensors[name] = (t.name, t.tensor_type, t.data_offset, t.n_bytes, t.data.dtype,
                                       tuple(t.data.shape), tuple(int(d) for d in reversed(t.shape.tolist())))
        missing = [n for n in expected if n not in self._tensors]
        if missing:
            raise ModelLoadError(f"the GGUF file {self.path.name!r} has no tensor for {missing[0]!r}",
                                 hint="this GGUF's architecture is not one l2v can stream")
        del reader

    def names(self) -> list[str]:
        return list(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors[name][6]

    def dtype(self, name: str):
        import torch

        return torch.float32

    def _raw(self, name: str, row_start: int = 0, row_stop: int | None = None):
        """The stored bytes of rows [row_start, row_stop) as gguf-py shapes them (uint8 blocks or floats)."""
        gname, qtype, offset, nbytes, np_dtype, np_shape, _ = self._tensors[name]
        rows = np_shape[0] if len(np_shape) > 1 else 1
        row_stop = rows if row_stop is None else row_stop
        per_row = nbytes // rows
        buf = _read_exact(self.path, offset + row_start * per_row, (row_stop - row_start) * per_row,
                          f"tensor {gname!r}").numpy()
        shape = (row_stop - row_start, *np_shape[1:]) if len(np_shape) > 1 else np_shape
        return buf.view(np_dtype).reshape(shape)

    def _dequantize(self, raw, qtype):
        """gguf-py's dequantize in row blocks (each row is whole blocks, so the values are the same)."""
        import numpy as np
        from gguf import dequantize

        if raw.ndim < 2:
            return dequantize(raw, qtype)
        rows = raw.shape[0]
        out = None
        step = max(1, ROW_BLOCK_ELEMENTS // max(1, raw[0].size))
        for start in range(0, rows, step):
            block = dequantize(raw[start:start + step], qtype)
            if out is None:
                out = np.empty((rows, *block.shape[1:]), dtype=np.float32)
            out[start:start + block.shape[0]] = block
        return out

    def get(self, name: str):
        import numpy as np
        import torch

        gname, qtype = self._tensors[name][:2]
        weights = self._dequantize(self._raw(name), qtype)
        weights = self.processor.process(weights=weights, name=gname, tensor_key_mapping={}, parsed_parameters={}).weights
        return torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)).reshape(self.shape(name))

    def get_rows(self, name: str, start: int, stop: int):
        """Rows of a tensor the processor leaves alone (the embedding); others go through `get`."""
        import numpy as np
        import torch

        gname, qtype = self._tensors[name][:2]
        if ".attn_q." in gname or ".attn_k." in gname or "norm" in gname:
            return self.get(name)[start:stop]
        block = self._dequantize(self._raw(name, start, stop), qtype)
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).reshape(stop - start, *self.shape(name)[1:])

    def nbytes(self) -> int:
        return sum(_numel(self.shape(n)) * 4 for n in self.names())


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _itemsize(dtype) -> int:
    return dtype.itemsize


def open_weights(source, config):
    """The `WeightSource` of a resolved `ModelSource` (an HF directory, the hub cache, or a GGUF file)."""
    if source.kind == "gguf":
        return GgufWeights(Path(source.path) / source.gguf_file, config)
    return SafetensorsWeights(source.path, config)
