"""`EmbeddingModel`: a decoder backbone + explicit attention mask + pooling (+ head), the exported graph."""
from __future__ import annotations

import torch
from torch import nn

from l2v.model.masks import build_masks, position_ids_from_mask
from l2v.model.pooling import check_pooling, normalize, pool


class EmbeddingModel(nn.Module):
    """forward(input_ids, attention_mask, pooling_mask) -> sentence_embedding `[B, D]`.

    `causal=False` (default) makes every token attend to every non-padding token. `head` (a
    `l2v.model.head.DenseHead`, sentence-transformers Dense layers) runs on the pooled vector. `dim`
    truncates to the first D dimensions (Matryoshka) before the optional L2 normalisation, so a
    truncated vector is unit-norm too (sentence-transformers' `truncate_dim` cuts after its Normalize
    module: same direction, norm below 1).
    """

    def __init__(self, backbone: nn.Module, pooling: str = "mean", normalize: bool = False,
                 causal: bool = False, dim: int | None = None, head: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        self.causal = bool(causal)
        hidden = backbone.config.hidden_size
        if head is not None:
            if head.in_features != hidden:
                from l2v.errors import InputError

                raise InputError(f"the head takes {head.in_features} inputs, the model's hidden size is {hidden}")
            self.head = head
        width = head.out_features if head is not None else hidden
        if dim is not None and not 0 < dim <= width:
            from l2v.errors import InputError

            raise InputError(f"--dim {dim} is out of range", hint=f"use 1..{width} (the embedding size)")
        self.dim = dim or width

    @property
    def config(self):
        return self.backbone.config

    def head_specs(self) -> list[dict]:
        return self.head.specs() if hasattr(self, "head") else []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling_mask: torch.Tensor) -> torch.Tensor:
        dtype = self.backbone.get_input_embeddings().weight.dtype
        masks = build_masks(self.config, attention_mask, dtype, self.causal)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=masks,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        emb = pool(out.last_hidden_state, attention_mask, pooling_mask, self.pooling)
        if hasattr(self, "head"):
            emb = self.head(emb.to(self.head.dense[0].linear.weight.dtype))
        emb = emb[:, : self.dim].float()
        return normalize(emb) if self.normalize else emb
