"""`PackedEncoder`: an HF decoder backbone run on packed tokens, no padding anywhere.

One implementation for llama, mistral, qwen2, qwen3 (q/k RMSNorm on the head dim) and gemma
(embedding scale sqrt(hidden) lives in its `GemmaTextScaledWordEmbedding`, (1+w) RMSNorm in its
`GemmaRMSNorm`, gelu in its `act_fn`): the engine calls the HF model's own submodules (embedding,
norms, linears, activation, rotary embedding) on `[total_tokens, ...]` tensors and only replaces
the parts that see the batch layout: positions (per sequence, from `cu_seqlens`), attention
(`attn_impl`) and pooling. The HF model is not modified; `quantize_linears` swaps the engine's own
references to the projections.

Like the exported graph (`l2v.model.masks`), a config-wide `sliding_window` without `layer_types`
(mistral) is not applied; per-layer sliding windows (qwen2/qwen3 `layer_types`) are refused when a
sequence is longer than the window.
"""
from __future__ import annotations

import torch
from torch import nn

from l2v.engine.attention import get_attention
from l2v.engine.packing import length_sorted_batches, pack_sequences, pad_to_bucket, positions
from l2v.engine.pooling import check_pooling, packed_pool
from l2v.errors import InputError, UnsupportedArchitectureError
from l2v.model.arch import ARCHS

LINEAR_NAMES = ARCHS["llama"].linear_names  # q, k, v, o, gate, up, down (every packed architecture has them)
SUPPORTED_MODEL_TYPES = tuple(mt for mt, a in ARCHS.items() if a.packed)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class PackedLayer(nn.Module):
    """One decoder layer over `[T, hidden]`; holds references to the HF layer's submodules."""

    def __init__(self, hf_layer: nn.Module, n_heads: int, n_kv: int):
        super().__init__()
        attn, mlp = hf_layer.self_attn, hf_layer.mlp
        self.input_layernorm = hf_layer.input_layernorm
        self.post_attention_layernorm = hf_layer.post_attention_layernorm
        for name in LINEAR_NAMES[:4]:
            setattr(self, name, getattr(attn, name))
        for name in LINEAR_NAMES[4:]:
            setattr(self, name, getattr(mlp, name))
        self.act_fn = mlp.act_fn
        self.q_norm = getattr(attn, "q_norm", None)
        self.k_norm = getattr(attn, "k_norm", None)
        self.n_heads, self.n_kv, self.head_dim = n_heads, n_kv, int(attn.head_dim)
        self.scaling = float(attn.scaling)

    def pre(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """norm -> q/k/v projections -> (q/k norm) -> rotary. Returns q `[T,H,D]`, k, v `[T,H_kv,D]`."""
        x = self.input_layernorm(h)
        t = x.shape[0]
        q = self.q_proj(x).view(t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(t, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(t, self.n_kv, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def post(self, h: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        """o_proj + residual, norm, gated MLP + residual."""
        h = h + self.o_proj(attn_out.reshape(attn_out.shape[0], -1))
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def _base_model(model: nn.Module) -> nn.Module:
    if not hasattr(model, "layers") and hasattr(model, "model"):  # *ForCausalLM wrapper
        model = model.model
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedArchitectureError(
            f"the packed engine does not support model_type {model_type!r}",
            hint=f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}; use the padded torch or onnx backend")
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(model, name):
            raise UnsupportedArchitectureError(f"{type(model).__name__} has no '{name}' module",
                                               hint="pass the base model (AutoModel), e.g. LlamaModel")
    return model


class PackedEncoder(nn.Module):
    """forward(inputs, pooling_mask=None, max_seqlen=None) -> float32 `[B, dim]`.

    `inputs`: a list of 1-D token-id sequences, or a tuple `(flat_ids [T], cu_seqlens int32 [B+1])`.
    `pooling_mask`: flat `[T]` (or a list of per-sequence masks), default all ones.
    `attention`: "bidirectional" (every token sees its whole sequence) or "causal".
    `attn_impl`: "torch" (per-sequence SDPA, any device) or "triton" (the Triton kernel, CUDA or
    the interpreter). `token_bucket`: round the token count up to a multiple (one dummy sequence) so
    compiled/graphed dense layers see few shapes. `compile`: None/False, True, or torch.compile kwargs.
    """

    def __init__(self, model: nn.Module, pooling: str = "mean", normalize: bool = False,
                 attention: str = "bidirectional", attn_impl: str = "torch", dim: int | None = None,
                 token_bucket: int | None = None, compile=None, head: nn.Module | None = None):
        super().__init__()
        base = _base_model(model)
        cfg = base.config
        if attention not in ("bidirectional", "causal"):
            raise InputError(f"attention must be 'bidirectional' or 'causal', got {attention!r}")
        self.config = cfg
        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        self.causal = attention == "causal"
        self.attn_impl = attn_impl
        self._attn = get_attention(attn_impl)
        hidden = cfg.hidden_size
        self.head = head  # l2v.model.head.DenseHead (fp32) on the pooled vector, or None
        width = head.out_features if head is not None else hidden
        if dim is not None and not 0 < dim <= width:
            raise InputError(f"dim={dim} is out of range", hint=f"use 1..{width} (the embedding size)")
        self.dim = dim or width
        if token_bucket is not None and token_bucket <= 0:
            raise InputError(f"token_bucket must be positive, got {token_bucket}")
        self.token_bucket = token_bucket
        self.pad_id = int(getattr(cfg, "pad_token_id", None) or 0)
        self.embed_tokens, self.norm, self.rotary_emb = base.embed_tokens, base.norm, base.rotary_emb
        n_heads, n_kv = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.layers = nn.ModuleList(PackedLayer(layer, n_heads, n_kv) for layer in base.layers)
        types = getattr(cfg, "layer_types", None) or []
        window = getattr(cfg, "sliding_window", None)
        self.window = int(window) if window and "sliding_attention" in types else None
        self._compiled = None
        self.set_compile(compile)

    # ------------------------------------------------------------------ hooks
    def set_compile(self, compile=True) -> None:
        """Turn torch.compile of the dense per-layer parts (pre/post attention) on or off.
        `compile`: False/None (off), True (defaults: dynamic shapes), or a dict of torch.compile kwargs,
        e.g. {"mode": "reduce-overhead"} (CUDA graphs; pair with `token_bucket`)."""
        self._compile_arg = compile
        if not compile:
            self._compiled = None
            return
        kwargs = {"dynamic": True} if compile is True else dict(compile)
        self._compiled = [(torch.compile(layer.pre, **kwargs), torch.compile(layer.post, **kwargs))
                          for layer in self.layers]

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    # ------------------------------------------------------------------ inputs
    def _as_packed(self, inputs, pooling_mask, max_seqlen):
        dev = self.device
        if isinstance(inputs, tuple) and len(inputs) == 2:
            flat, cu = inputs
            if not isinstance(flat, torch.Tensor) or flat.dim() != 1 or flat.dtype.is_floating_point:
                raise InputError("flat_ids must be a 1-D integer tensor")
            if not isinstance(cu, torch.Tensor) or cu.dim() != 1 or cu.dtype != torch.int32 or cu.numel() < 1:
                raise InputError("cu_seqlens must be a 1-D int32 tensor with batch + 1 entries")
            flat, cu = flat.to(dev), cu.to(dev)
        else:
            flat, cu, _ = pack_sequences(inputs, device=dev)
            if isinstance(pooling_mask, (list, tuple)):
                pooling_mask = pack_sequences(pooling_mask, device=dev)[0]
        total = flat.numel()
        cu_host = cu.cpu()  # the one device->host copy per forward
        lens = cu_host[1:] - cu_host[:-1]
        if cu.numel() < 2 or int(cu_host[0]) != 0 or bool((lens < 0).any()) or int(cu_host[-1]) != total:
            raise InputError(f"cu_seqlens must start at 0, be non-decreasing and end at total_tokens={total}")
        longest = int(lens.max())
        if max_seqlen is None:
            max_seqlen = longest
        elif max_seqlen < longest:
            raise InputError(f"max_seqlen={max_seqlen} is smaller than the longest sequence ({longest})")
        if self.window is not None and longest > self.window:
            raise InputError(f"a sequence of {longest} tokens exceeds the sliding window {self.window}",
                             hint="the packed engine has no sliding-window attention; shorten the inputs")
        if pooling_mask is None:
            pooling_mask = torch.ones(total, dtype=torch.long, device=dev)
        pooling_mask = torch.as_tensor(pooling_mask, device=dev).reshape(-1)
        if pooling_mask.numel() != total:
            raise InputError(f"pooling_mask has {pooling_mask.numel()} entries, expected total_tokens={total}")
        return flat, cu, int(max_seqlen), pooling_mask

    # ------------------------------------------------------------------ forward
    def hidden_states(self, flat_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        """Final-norm hidden states `[T, hidden]` for packed ids (cu_seqlens already validated)."""
        h = self.embed_tokens(flat_ids)
        pos = positions(cu_seqlens, flat_ids.numel())
        cos, sin = self.rotary_emb(h, pos[None])
        cos, sin = cos[0][:, None, :], sin[0][:, None, :]
        for i, layer in enumerate(self.layers):
            pre, post = self._compiled[i] if self._compiled else (layer.pre, layer.post)
            q, k, v = pre(h, cos, sin)
            a = self._attn(q, k, v, cu_seqlens, max_seqlen, causal=self.causal, softmax_scale=layer.scaling)
            h = post(h, a)
        return self.norm(h)

    def forward(self, inputs, pooling_mask=None, max_seqlen: int | None = None) -> torch.Tensor:
        with torch.inference_mode():
            flat, cu, max_seqlen, pmask = self._as_packed(inputs, pooling_mask, max_seqlen)
            n_real = cu.numel() - 1
            if self.token_bucket:
                flat, cu, max_seqlen, n_real = pad_to_bucket(flat, cu, max_seqlen, self.token_bucket, self.pad_id)
                pmask = torch.cat([pmask, pmask.new_zeros(flat.numel() - pmask.numel())])
            hidden = self.hidden_states(flat, cu, max_seqlen)
            emb = packed_pool(hidden, cu, pmask, self.pooling, n_seqs=n_real)
            if self.head is not None:
                emb = self.head(emb.float())
            emb = emb[:, : self.dim].float()
            if self.normalize:
                emb = emb / emb.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            return emb

    def encode(self, seqs, pooling_masks=None, max_batch_tokens: int = 16384, max_batch_size: int | None = None):
        """Embed a list of token-id sequences in length-sorted, token-budgeted packed batches.
        Returns float32 `[N, dim]` in input order."""
        lengths = [len(s) for s in seqs]
        out = torch.zeros(len(seqs), self.dim, dtype=torch.float32, device=self.device)
        for idx in length_sorted_batches(lengths, max_batch_tokens, max_batch_size):
            masks = None if pooling_masks is None else [pooling_masks[i] for i in idx]
            out[idx] = self.forward([seqs[i] for i in idx], masks)
        return out
