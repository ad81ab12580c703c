"""The layers after pooling, inside the graph: sentence-transformers `Dense` (Linear + activation, optional
residual). Normalisation and Matryoshka truncation stay flags of `EmbeddingModel` (`normalize`, `dim`).

A head is described by a list of plain dicts (stored in the manifest's `graph.head`) and its weights
(`torch/head.safetensors`, keys `dense.<i>.linear.weight`, ...). No module path contains `layers.<n>.`,
so quantization's layer ranking (`Arch.unit_of`) never mistakes a head Linear for a decoder projection.
"""
from __future__ import annotations

import torch
from torch import nn

# sentence-transformers saves the activation as the class path of a torch.nn module; these are the ones
# the export supports (each a parameter-free module whose default constructor is what ST instantiates).
ACTIVATIONS = {
    "Identity": nn.Identity, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "GELU": nn.GELU, "Sigmoid": nn.Sigmoid,
    "SiLU": nn.SiLU, "Softsign": nn.Softsign, "Softplus": nn.Softplus, "ELU": nn.ELU, "LeakyReLU": nn.LeakyReLU,
    "Mish": nn.Mish, "Hardtanh": nn.Hardtanh,
}
WEIGHTS = "head.safetensors"


def check_dense_spec(spec: dict, where: str = "head") -> dict:
    """A head layer: {in_features, out_features, bias, activation (a key of ACTIVATIONS), residual}."""
    from l2v.errors import InputError

    need = {"in_features": int, "out_features": int, "bias": bool, "activation": str, "residual": bool}
    for key, tp in need.items():
        if not isinstance(spec.get(key), tp) or (tp is int and isinstance(spec.get(key), bool)):
            raise InputError(f"{where}: {key!r} must be {tp.__name__}, got {spec.get(key)!r}")
    if spec["activation"] not in ACTIVATIONS:
        raise InputError(f"{where}: activation {spec['activation']!r} is not supported",
                         hint=f"supported: {', '.join(ACTIVATIONS)}")
    return {k: spec[k] for k in need}


class DenseLayer(nn.Module):
    """sentence-transformers `Dense.forward`: activation(linear(x)) (+ x, or + residual(x) when the sizes differ)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = check_dense_spec(spec)
        self.linear = nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"])
        self.activation = ACTIVATIONS[spec["activation"]]()
        if spec["residual"] and spec["in_features"] != spec["out_features"]:
            self.residual = nn.Linear(spec["in_features"], spec["out_features"], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(x))
        if self.spec["residual"]:
            out = out + (self.residual(x) if hasattr(self, "residual") else x)
        return out


class DenseHead(nn.Module):
    """Dense layers in order, after pooling."""

    def __init__(self, specs: list[dict]):
        super().__init__()
        self.dense = nn.ModuleList(DenseLayer(s) for s in specs)
        for a, b in zip(specs, specs[1:]):
            if a["out_features"] != b["in_features"]:
                from l2v.errors import InputError

                raise InputError(f"head layers do not chain: {a['out_features']} outputs feed {b['in_features']} inputs")

    def specs(self) -> list[dict]:
        return [layer.spec for layer in self.dense]

    @property
    def in_features(self) -> int:
        return self.dense[0].spec["in_features"]

    @property
    def out_features(self) -> int:
        return self.dense[-1].spec["out_features"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.dense:
            x = layer(x)
        return x


def save_head(head: DenseHead, path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(path), metadata={"format": "pt"})


def load_head(specs: list[dict], path, dtype=None) -> DenseHead:
    """The head from its specs and `head.safetensors`; every tensor must be present with its shape."""
    from safetensors.torch import load_file

    from l2v.errors import ArtifactError

    head = DenseHead(specs)
    state = load_file(str(path))
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{path}: the head weights do not match graph.head: {str(e).splitlines()[0][:200]}",
                            hint="the artifact's torch/ files are damaged; re-export it") from e
    return head.to(dtype) if dtype is not None else head
