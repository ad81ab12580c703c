"""LLM2Vec's usual loading merges the MNTP adapter and keeps the second (SimCSE / supervised) adapter
unmerged (`LLM2Vec.from_pretrained(..., peft_model_name_or_path=..., merge_peft=False)`, llm2vec.py
L116-129). The artifact merges both (an ONNX graph has plain weights; manifest `adapters_merged: true`).
This measures that the two differ by rounding only, in fp32, on a tiny model with two random adapters
(bench/text_presets.py --merge-check measures SmolLM2 in fp32 and bf16)."""
import numpy as np
import torch

from helpers_adapters import make_lora
from l2v.model.adapters import merge_adapters
from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor
from l2v.text.presets import build_text_spec
from tiny import save_model_dir


def test_second_adapter_unmerged_equals_merged_to_rounding(tmp_path, tok):
    from peft import PeftModel
    from transformers import AutoModel

    base = save_model_dir(tmp_path / "base", "llama")
    mntp = make_lora(base, tmp_path / "mntp", seed=1, mntp=True)
    sup = make_lora(base, tmp_path / "sup", seed=2, mntp=False)
    merged, _ = merge_adapters(AutoModel.from_pretrained(str(base)), [str(mntp), str(sup)])
    half, _ = merge_adapters(AutoModel.from_pretrained(str(base)), [str(mntp)])
    pre = Preprocessor(tok, build_text_spec("llm2vec", "mean", 512))
    batch = pre.batch(["The quick brown fox jumps over the lazy dog.", ("Retrieve news", "Embedding models.")])
    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        c = EmbeddingModel(half, "mean")(**t).numpy()  # before peft injects the second adapter in place
        unmerged = PeftModel.from_pretrained(half, str(sup)).get_base_model().eval()
        assert any("lora_A" in n for n, _ in unmerged.named_parameters())  # really unmerged
        a = EmbeddingModel(merged, "mean")(**t).numpy()
        b = EmbeddingModel(unmerged, "mean")(**t).numpy()
    scale = np.abs(a).max()
    assert np.abs(a - b).max() <= 1e-5 * scale  # rounding only
    assert np.abs(a - c).max() > 1e-2 * scale  # while the second adapter itself matters
