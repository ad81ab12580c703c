"""PackedEncoder (no padding) == padded HF forward with an explicit bidirectional mask, fp32, CPU."""
from __future__ import annotations

import pytest
import torch
from engine_tiny_models import padded_reference, random_seqs, tiny_model

from l2v.engine.packed import PackedEncoder
from l2v.errors import InputError, UnsupportedArchitectureError

LENS = [7, 1, 13, 4]
TOL = 1e-4


def pooling_masks_for(seqs, pooling, seed=1):
    g = torch.Generator().manual_seed(seed)
    if pooling in ("mean", "weighted_mean"):  # instruction-style masks: some prefix tokens not pooled
        masks = []
        for s in seqs:
            m = torch.ones(len(s), dtype=torch.long)
            m[: int(torch.randint(0, max(len(s) // 2, 1), (1,), generator=g))] = 0
            masks.append(m)
        return masks
    if pooling == "eos_token":  # pool the second-to-last token where there is one
        return [torch.nn.functional.one_hot(torch.tensor(max(len(s) - 2, 0)), len(s)) for s in seqs]
    return [torch.ones(len(s), dtype=torch.long) for s in seqs]


@pytest.mark.parametrize("pooling", ["mean", "weighted_mean", "last_token", "eos_token", "bos_token"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_matches_padded_hf_bidirectional(arch_model, pooling, side):
    _, model = arch_model
    seqs = random_seqs(LENS)
    masks = pooling_masks_for(seqs, pooling)
    enc = PackedEncoder(model, pooling=pooling, attn_impl="torch")
    got = enc(seqs, masks)
    ref = padded_reference(model, seqs, masks, pooling, side=side)
    assert got.shape == (len(LENS), 64) and got.dtype == torch.float32
    assert (got - ref).abs().max().item() <= TOL


def test_matches_padded_hf_causal(arch_model):
    _, model = arch_model
    seqs = random_seqs(LENS, seed=3)
    masks = pooling_masks_for(seqs, "mean")
    enc = PackedEncoder(model, pooling="mean", attention="causal", attn_impl="torch")
    ref = padded_reference(model, seqs, masks, "mean", side="left", causal=True)
    assert (enc(seqs, masks) - ref).abs().max().item() <= TOL
    bidir = padded_reference(model, seqs, masks, "mean", side="left", causal=False)
    assert (bidir - ref).abs().max().item() > 1e-3  # the test can tell the two apart


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma"])
def test_triton_kernel_in_engine(arch):
    pytest.importorskip("triton", reason="triton is not installed: pip install 'l2v-export[gpu]'")
    from l2v.kernels import flash_attn

    model = tiny_model(arch)
    if not flash_attn.INTERPRET:  # compiled kernel: CUDA tensors (and TF32 dots for fp32 inputs)
        model = model.cuda()
    seqs = random_seqs([9, 1, 0, 40])
    masks = pooling_masks_for(seqs, "mean")
    ref = PackedEncoder(model, pooling="mean", attn_impl="torch")(seqs, masks)
    got = PackedEncoder(model, pooling="mean", attn_impl="triton")(seqs, masks)
    assert (got - ref).abs().max().item() <= (TOL if flash_attn.INTERPRET else 5e-3)


def test_packed_inputs_normalize_dim_and_empty_sequence():
    model = tiny_model("llama")
    seqs = random_seqs([5, 0, 8])
    enc = PackedEncoder(model, pooling="mean", normalize=True, dim=32)
    flat = torch.cat(seqs)
    cu = torch.tensor([0, 5, 5, 13], dtype=torch.int32)
    a = enc((flat, cu))
    b = enc(seqs)
    assert a.shape == (3, 32)
    torch.testing.assert_close(a, b)
    assert torch.allclose(a[[0, 2]].norm(dim=-1), torch.ones(2))
    assert torch.count_nonzero(a[1]) == 0  # empty sequence -> zero vector
    full = PackedEncoder(model, pooling="mean")(seqs)
    torch.testing.assert_close(a[0], torch.nn.functional.normalize(full[0, :32], dim=0))


def test_token_bucket_encode_order_and_compile_hook():
    model = tiny_model("qwen2")
    seqs = random_seqs([3, 17, 1, 9, 30, 2], seed=5)
    base = PackedEncoder(model, pooling="weighted_mean")
    ref = base(seqs)
    bucketed = PackedEncoder(model, pooling="weighted_mean", token_bucket=16)
    torch.testing.assert_close(bucketed(seqs), ref, atol=TOL, rtol=0)
    torch.testing.assert_close(base.encode(seqs, max_batch_tokens=20), ref, atol=TOL, rtol=0)
    compiled = PackedEncoder(model, pooling="weighted_mean", compile={"backend": "eager", "dynamic": True})
    torch.testing.assert_close(compiled(seqs), ref, atol=TOL, rtol=0)
    compiled.set_compile(False)
    assert compiled._compiled is None


def test_input_errors():
    model = tiny_model("llama")
    enc = PackedEncoder(model)
    seqs = random_seqs([4, 3])
    with pytest.raises(InputError, match="pooling_mask has 5 entries"):
        enc(seqs, torch.ones(5))
    with pytest.raises(InputError, match="total_tokens=7"):
        enc((torch.cat(seqs), torch.tensor([0, 4, 6], dtype=torch.int32)))
    with pytest.raises(InputError, match="int32"):
        enc((torch.cat(seqs), torch.tensor([0, 4, 7])))
    with pytest.raises(InputError, match="max_seqlen=3"):
        enc(seqs, max_seqlen=3)
    with pytest.raises(InputError, match="unknown pooling"):
        PackedEncoder(model, pooling="bogus")
    with pytest.raises(InputError, match="attention must be"):
        PackedEncoder(model, attention="sliding")
    with pytest.raises(InputError, match="attn_impl"):
        PackedEncoder(model, attn_impl="cuda")


def test_unsupported_architecture_and_sliding_window():
    import transformers as tf

    gpt2 = tf.GPT2Model(tf.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(UnsupportedArchitectureError, match="gpt2"):
        PackedEncoder(gpt2)
    model = tiny_model("qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=1,
                       layer_types=["full_attention", "sliding_attention"])
    enc = PackedEncoder(model)
    enc(random_seqs([8, 3]))  # within the window: exact
    with pytest.raises(InputError, match="sliding window 8"):
        enc(random_seqs([9]))


def test_matches_lead_embedding_model():
    """Same vectors as the padded export-side `l2v.model.encoder.EmbeddingModel` (the graph contract)."""
    from l2v.model.encoder import EmbeddingModel

    model = tiny_model("mistral")
    seqs = random_seqs([6, 11, 2], seed=9)
    masks = pooling_masks_for(seqs, "mean")
    em = EmbeddingModel(model, pooling="mean", normalize=True)
    s = max(map(len, seqs))
    ids = torch.zeros(3, s, dtype=torch.long)
    am, pm = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, (x, m) in enumerate(zip(seqs, masks)):
        ids[i, s - len(x):], am[i, s - len(x):], pm[i, s - len(x):] = x, 1, m
    with torch.no_grad():
        ref = em(ids, am, pm)
    got = PackedEncoder(model, pooling="mean", normalize=True)(seqs, masks)
    assert (got - ref).abs().max().item() <= TOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma"])
def test_gpu_bf16_engine_matches_hf(arch):
    """bf16 on CUDA with the compiled kernel (head_dim 64/128/256 as in real models) vs padded HF."""
    from l2v.kernels import flash_attn

    if flash_attn.INTERPRET:
        pytest.skip("TRITON_INTERPRET=1")
    head_dim = {"llama": 64, "qwen3": 128, "gemma": 256}[arch]
    model = tiny_model(arch, head_dim=head_dim, initializer_range=0.02).to("cuda", torch.bfloat16)
    seqs = random_seqs([300, 1, 77, 512, 0, 5], seed=11)
    masks = pooling_masks_for(seqs, "mean")
    got = PackedEncoder(model, pooling="mean", attn_impl="triton")(seqs, masks)
    keep = [i for i, s in enumerate(seqs) if len(s)]
    ref = padded_reference(model, [seqs[i] for i in keep], [masks[i] for i in keep], "mean")
    cos = torch.nn.functional.cosine_similarity(got[keep], ref.to(got.device), dim=-1)
    assert cos.min().item() >= 0.999
