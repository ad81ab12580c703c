"""Check and merge LoRA adapters (LLM2Vec layout: MNTP dir with config + adapter + tokenizer, then a
SimCSE / supervised dir with only the adapter files), in order, with peft's `merge_and_unload`; or
merge all but the last and keep the last unmerged, as a LoRA side branch (`merge_all_but_last`).

Before merging, every LoRA tensor is checked against the base: the target module must exist and be a
Linear whose shape fits `lora_A [r, in]` / `lora_B [out, r]`. A mismatch is one line naming the
adapter, the module and both shapes.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from l2v.errors import AdapterError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."
ADAPTER_SUBDIR = "adapter"  # in an artifact's torch/: the adapter kept unmerged, applied at load


@dataclass
class AdapterInfo:
    path: str
    sha256: str
    config: dict
    tensors: dict = field(default_factory=dict)  # key -> shape

    def summary(self) -> dict:
        c = self.config
        return {"path": self.path, "sha256": self.sha256, "peft_type": c.get("peft_type"), "r": c.get("r"),
                "lora_alpha": c.get("lora_alpha"), "target_modules": c.get("target_modules"),
                "base_model_name_or_path": c.get("base_model_name_or_path")}


def read_config(path: str) -> dict:
    """The adapter's `adapter_config.json` as a dict; `AdapterError` naming the directory otherwise."""
    d = Path(path)
    if not d.is_dir():
        raise AdapterError(f"adapter {str(path)!r} is not a directory")
    for name in (CONFIG, WEIGHTS):
        if not (d / name).is_file():
            raise AdapterError(f"adapter {str(path)!r} has no {name}",
                               hint="an adapter directory holds adapter_config.json and adapter_model.safetensors")
    try:
        config = json.loads((d / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterError(f"adapter {str(path)!r}: {CONFIG} is unreadable: {str(e).splitlines()[0][:200]}") from e
    if not isinstance(config, dict):
        raise AdapterError(f"adapter {str(path)!r}: {CONFIG} is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"adapter {str(path)!r} is {config.get('peft_type')}, only LoRA adapters can be merged")
    return config


def read_adapter(path: str) -> AdapterInfo:
    from safetensors import safe_open

    from l2v.fileio import sha256_file

    config = read_config(path)
    d = Path(path)
    try:
        with safe_open(str(d / WEIGHTS), framework="pt") as f:
            tensors = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, ... for a bad file
        raise AdapterError(f"adapter {path!r}: {WEIGHTS} is unreadable: {str(e).splitlines()[0][:200]}") from e
    return AdapterInfo(str(d.resolve()), sha256_file(d / WEIGHTS), config, tensors)


def _module_name(key: str) -> tuple[str, str] | None:
    """'base_model.model.layers.0.self_attn.q_proj.lora_A.weight' -> ('layers.0.self_attn.q_proj', 'lora_A')."""
    for part in ("lora_A", "lora_B"):
        marker = f".{part}."
        if marker in key:
            return key.split(marker)[0].removeprefix(PREFIX), part
    return None


def _strip_lm_prefix(info: AdapterInfo, modules: dict) -> bool:
    """True when the adapter was saved on a *ForCausalLM (keys carry an extra 'model.')."""
    names = [n for k in info.tensors if (n := _module_name(k))]
    return bool(names) and all(n[0] not in modules and n[0].removeprefix("model.") in modules for n in names)


def check_adapter_fits(model, info: AdapterInfo) -> bool:
    """Raise AdapterError on the first mismatch; return whether keys need the 'model.' prefix stripped."""
    from torch import nn

    modules = dict(model.named_modules())
    strip = _strip_lm_prefix(info, modules)
    lora = [(k, n) for k in info.tensors if (n := _module_name(k))]
    if not lora:
        raise AdapterError(f"adapter {info.path!r} holds no LoRA tensors")
    for key, (name, part) in lora:
        name = name.removeprefix("model.") if strip else name
        mod = modules.get(name)
        if mod is None:
            raise AdapterError(f"adapter {info.path!r} targets module {name!r}, which the base model lacks",
                               hint="this adapter was trained for another base model")
        if not isinstance(mod, nn.Linear):
            raise AdapterError(f"adapter {info.path!r}: module {name!r} is {type(mod).__name__}, not Linear")
        shape = info.tensors[key]
        want = mod.in_features if part == "lora_A" else mod.out_features
        got = shape[1] if part == "lora_A" else shape[0]
        if got != want:
            base = (mod.out_features, mod.in_features)
            raise AdapterError(f"adapter {info.path!r}: module {name!r} has weight shape {base}, "
                               f"the adapter's {part} has shape {shape}", hint="the adapter is for another base model")
    return strip


def _renamed_copy(info: AdapterInfo, tmp: str) -> str:
    from safetensors.torch import load_file, save_file

    state = load_file(str(Path(info.path) / WEIGHTS))
    state = {k.replace(PREFIX + "model.", PREFIX, 1): v for k, v in state.items()}
    save_file(state, str(Path(tmp) / WEIGHTS))
    shutil.copy(Path(info.path) / CONFIG, Path(tmp) / CONFIG)
    return tmp


def _peft_load(model, path: str):
    """Check `path` against `model`, then inject it with peft (unmerged, inference only):
    returns (PeftModel, AdapterInfo)."""
    from peft import PeftModel

    info = read_adapter(path)
    strip = check_adapter_fits(model, info)
    with tempfile.TemporaryDirectory() as tmp:
        src = _renamed_copy(info, tmp) if strip else info.path
        try:
            peft_model = PeftModel.from_pretrained(model, src, is_trainable=False)
        except Exception as e:
            raise AdapterError(f"peft could not load adapter {path!r}: {str(e).splitlines()[0][:200]}") from e
    return peft_model.eval(), info


def merge_adapters(model, adapter_dirs: list[str]):
    """Merge each adapter into `model` in order; returns (merged model, [AdapterInfo])."""
    infos = []
    for path in adapter_dirs:
        peft_model, info = _peft_load(model, path)
        model = peft_model.merge_and_unload()
        infos.append(info)
    return model.eval(), infos


def apply_unmerged(model, path: str):
    """Inject the adapter at `path` into `model` as LoRA side branches (y = W x + B A x * scale), not
    folded into W; eval mode, so LoRA dropout is inactive. Returns (the same model class, with peft's
    LoRA Linear wrappers inside, AdapterInfo)."""
    peft_model, info = _peft_load(model, path)
    return peft_model.base_model.model.eval(), info


def merge_all_but_last(model, adapter_dirs: list[str]):
    """Merge every adapter but the last, then apply the last unmerged (`apply_unmerged`).
    Returns (model, [AdapterInfo]); `base_state_dict(model)` is the merged base without the last."""
    if not adapter_dirs:
        raise AdapterError("keeping the last adapter unmerged needs at least one adapter")
    model, infos = merge_adapters(model, adapter_dirs[:-1])
    model, last = apply_unmerged(model, adapter_dirs[-1])
    return model, infos + [last]


def base_state_dict(model) -> dict:
    """`model`'s state dict with peft's unmerged LoRA tensors dropped and base weights under their
    plain names ('q_proj.base_layer.weight' -> 'q_proj.weight'): what AutoModel loads."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}
