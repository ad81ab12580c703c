"""Reference implementations re-written for parity tests (none is vendored; none imports l2v.text).

`RefLLM2Vec` mirrors llm2vec 0.2.3 (`pip download --no-deps llm2vec==0.2.3`, file llm2vec/llm2vec.py):
prepare_for_tokenization L147-180, tokenize L182-223, forward L232-239, get_pooling L241-273,
_convert_to_str L275-304, encode L306-410 (single-device branch). The bidirectional model call mirrors
LlamaBiModel._update_causal_mask (models/bidirectional_llama.py L92-185, CPU path): a zero mask with
padded keys set to the dtype minimum, and no position ids, so the model uses arange (left padding
shifts the positions of shorter rows, as in transformers 4.44's LlamaModel.forward).

`e5_reference` mirrors the E5-Mistral model card snippet (tokenize to max_length - 1, append eos, pad,
last_token_pool); `eol_reference` mirrors the PromptEOL / MetaEOL evaluation.py batcher.
"""
from __future__ import annotations

import numpy as np
import torch

SEP = "!@#$%^&*()"


class RefLLM2Vec:
    def __init__(self, model, tokenizer, pooling_mode="mean", max_length=512, doc_max_length=400,
                 skip_instruction=True, name_or_path="", model_type="llama"):
        self.model, self.tokenizer = model, tokenizer
        self.pooling_mode, self.max_length, self.doc_max_length = pooling_mode, max_length, doc_max_length
        self.skip_instruction = skip_instruction
        self.name, self.model_type = name_or_path, model_type  # model.config._name_or_path, config class
        tokenizer.pad_token = tokenizer.eos_token  # L96-97
        tokenizer.padding_side = "left"

    def prepare_for_tokenization(self, text):  # L147-180
        if self.name == "meta-llama/Meta-Llama-3-8B-Instruct":
            return "<|start_header_id|>user<|end_header_id|>\n\n" + text.strip() + "<|eot_id|>"
        if self.name in ["mistralai/Mistral-7B-Instruct-v0.2", "meta-llama/Llama-2-7b-chat-hf"]:
            text = "[INST] " + text.strip() + " [/INST]"
        if self.name in ["google/gemma-2-9b-it"]:
            text = "<bos><start_of_turn>user\n" + text.strip() + "<end_of_turn>"
        if self.name in ["Qwen/Qwen2-1.5B-Instruct", "Qwen/Qwen2-7B-Instruct"]:
            text = "<|im_start|>user\n" + text.strip() + "<|im_end|>"
        if self.pooling_mode == "eos_token":
            if self.name == "meta-llama/Meta-Llama-3-8B":
                text = text.strip() + "<|end_of_text|>"
            elif self.model_type in ("llama", "mistral"):
                text = text.strip() + " </s>"
            elif self.model_type == "gemma":
                text = text.strip() + "<eos>"
            elif self.model_type == "qwen2":
                text = text.strip() + "<|endoftext|>"
        return text

    def tokenize(self, texts):  # L182-223
        texts_2, original_texts = [], []
        for text in texts:
            t = text.split(SEP)
            texts_2.append(t[1] if len(t) > 1 else "")
            original_texts.append("".join(t))
        original = self.tokenizer(original_texts, return_tensors="pt", padding=True, truncation=True,
                                  max_length=self.max_length)
        embed_mask = None
        for t_i, t in enumerate(texts_2):
            ids = self.tokenizer([t], return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=False)
            e_m = torch.zeros_like(original["attention_mask"][t_i])
            if len(ids["input_ids"][0]) > 0:
                e_m[-len(ids["input_ids"][0]):] = torch.ones(len(ids["input_ids"][0]))
            embed_mask = e_m.unsqueeze(0) if embed_mask is None else torch.cat((embed_mask, e_m.unsqueeze(0)), dim=0)
        original["embed_mask"] = embed_mask
        return original

    def _bi_model(self, input_ids, attention_mask):  # bidirectional_llama.py L92-185
        dtype = self.model.get_input_embeddings().weight.dtype
        b, s = input_ids.shape
        causal_mask = torch.zeros((s, s), dtype=dtype)[None, None, :, :].expand(b, 1, -1, -1).clone()
        padding_mask = causal_mask.eq(0.0) * attention_mask[:, None, None, :].eq(0.0)
        causal_mask = causal_mask.masked_fill(padding_mask, torch.finfo(dtype).min)
        return self.model(input_ids=input_ids, attention_mask=causal_mask, use_cache=False).last_hidden_state

    def forward(self, features):  # L232-239
        embed_mask = features.pop("embed_mask")
        reps = self._bi_model(features["input_ids"], features["attention_mask"])
        features["embed_mask"] = embed_mask
        return self.get_pooling(features, reps)

    def get_pooling(self, features, last_hidden_states):  # L241-273
        if self.skip_instruction:
            features["attention_mask"] = features["embed_mask"]
        seq_lengths = features["attention_mask"].sum(dim=-1)
        if self.pooling_mode == "mean":
            return torch.stack([last_hidden_states[i, -length:, :].mean(dim=0)
                                for i, length in enumerate(seq_lengths)], dim=0)
        if self.pooling_mode == "weighted_mean":
            bs, l, _ = last_hidden_states.shape
            complete_weights = torch.zeros(bs, l)
            for i, seq_l in enumerate(seq_lengths):
                if seq_l > 0:
                    complete_weights[i, -seq_l:] = torch.arange(seq_l) + 1
                    complete_weights[i] /= torch.clamp(complete_weights[i].sum(), min=1e-9)
            return torch.sum(last_hidden_states * complete_weights.unsqueeze(-1), dim=1)
        if self.pooling_mode in ("eos_token", "last_token"):
            return last_hidden_states[:, -1]
        raise ValueError(self.pooling_mode)

    def _convert_to_str(self, instruction, text):  # L275-304
        def count(t):
            return len(self.tokenizer(t, return_tensors="pt", padding=True, truncation=True,
                                      max_length=self.max_length, add_special_tokens=False)["input_ids"][0])

        tokenized_q_length = count(text)
        while tokenized_q_length > self.doc_max_length:
            reduction_ratio = self.doc_max_length / tokenized_q_length
            reduced_length = int(len(text.split()) * reduction_ratio)
            text = " ".join(text.split()[:reduced_length])
            tokenized_q_length = count(text)
        return f"{instruction.strip()} {SEP}{text}" if instruction else f"{SEP}{text}"

    def encode(self, sentences, batch_size=32):  # L306-410
        if isinstance(sentences[0], str):
            sentences = [[""] + [sentence] for sentence in sentences]
        sentences = [self._convert_to_str(s[0], s[1]) for s in sentences]
        length_sorted_idx = np.argsort([-len(sen) for sen in sentences])
        sentences_sorted = [sentences[idx] for idx in length_sorted_idx]
        out = []
        with torch.no_grad():
            for start in range(0, len(sentences), batch_size):
                batch = sentences_sorted[start:start + batch_size]
                features = self.tokenize([self.prepare_for_tokenization(s) for s in batch])
                out.append(self.forward(features))
        emb = torch.cat(out, dim=0)[np.argsort(length_sorted_idx)]
        return emb.float().numpy()


def e5_reference(model, tokenizer, texts, max_length=512):
    """E5-Mistral's card: tokenize to max_length - 1, append eos, pad, last_token_pool (causal model)."""
    batch = tokenizer(texts, max_length=max_length - 1, return_attention_mask=False, padding=False, truncation=True)
    batch["input_ids"] = [ids + [tokenizer.eos_token_id] for ids in batch["input_ids"]]
    batch = tokenizer.pad(batch, padding=True, return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"]
    if mask[:, -1].sum() == mask.shape[0]:  # left padding
        return hidden[:, -1].numpy()
    lengths = mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0]), lengths].numpy()


def eol_reference(model, tokenizer, sentences, task_prompts):
    """PromptEOL / MetaEOL evaluation.py `batcher`: sentence clean-up, '*sent 0*' replaced, prompt
    stripped, left padding, last position of the last layer, mean over the prompts."""
    tokenizer.padding_side = "left"
    new_sentences = []
    for s in sentences:
        if len(s) > 0 and s[-1] not in '.?"\'':
            s += "."
        s = s.replace('"', "'")
        if len(s) > 0 and "?" == s[-1]:
            s = s[:-1] + "."
        for prompt in task_prompts:
            new_sentences.append(prompt.replace("*sent 0*", s).strip())
    batch = tokenizer(new_sentences, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    out = hidden[:, -1, :]
    return out.view(-1, len(task_prompts), out.size()[1]).mean(dim=1).numpy()
