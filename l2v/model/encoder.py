"""`EmbeddingModel`: a decoder backbone + explicit attention mask + pooling, the exported graph."""
from __future__ import annotations

import torch
from torch import nn

from l2v.model.masks import build_masks, position_ids_from_mask
from l2v.model.pooling import check_pooling, normalize, pool


class EmbeddingModel(nn.Module):
    """forward(input_ids, attention_mask, pooling_mask) -> sentence_embedding `[B, D]`.

    `causal=False` (default) makes every token attend to every non-padding token. `dim` truncates to the
    first D dimensions (Matryoshka) before the optional L2 normalisation.
    """

    def __init__(self, backbone: nn.Module, pooling: str = "mean", normalize: bool = False,
                 causal: bool = False, dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        self.causal = bool(causal)
        hidden = backbone.config.hidden_size
        if dim is not None and not 0 < dim <= hidden:
            from l2v.errors import InputError

            raise InputError(f"--dim {dim} is out of range", hint=f"use 1..{hidden} (the hidden size)")
        self.dim = dim or hidden

    @property
    def config(self):
        return self.backbone.config

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
        emb = emb[:, : self.dim].float()
        return normalize(emb) if self.normalize else emb
