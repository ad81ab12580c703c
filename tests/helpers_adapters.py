"""Build LoRA adapters in LLM2Vec's published layout, with peft, on tiny models."""
from __future__ import annotations

import json
from pathlib import Path

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_lora(base_dir: Path, out: Path, seed: int, mntp: bool, arch_overrides: dict | None = None) -> Path:
    """MNTP layout: config.json + adapter files + tokenizer; second stage: adapter files only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    from tiny import make_backbone, make_tokenizer

    base = (make_backbone("llama", "sdpa", 0, **arch_overrides) if arch_overrides
            else AutoModel.from_pretrained(str(base_dir)))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    peft_model.save_pretrained(str(out))
    if mntp:
        cfg = json.loads((Path(base_dir) / "config.json").read_text())
        (out / "config.json").write_text(json.dumps(cfg))
        make_tokenizer().save_pretrained(str(out))
    return out


def llm2vec_adapters(base_dir: Path, root: Path) -> tuple[Path, Path]:
    """The two stages LLM2Vec users ship, on `base_dir`: (MNTP dir, SimCSE/supervised dir) under `root`."""
    return (make_lora(base_dir, root / "mntp", seed=1, mntp=True),
            make_lora(base_dir, root / "simcse", seed=2, mntp=False))
