"""Text -> `input_ids`, `attention_mask`, `pooling_mask` (numpy int64 `[B, S]`), the graph's inputs.

An item is a string or an `(instruction, text)` pair. Each item is rendered through every template of
the `TextSpec` (one row per template; MetaEOL has several) and the tokens of the text, plus whatever
the template puts after it (chat suffix, appended eos), are pooled; the instruction, the template's
prefix and BOS are attended to but never pooled. The `clean` mode finds the pooled span from
character offsets; the `compat` mode reproduces llm2vec 0.2.3 token for token; the `st` mode reproduces
sentence-transformers (prompt + text tokenised together, every token pooled except, with
`include_prompt=False`, the first n where n is the prompt's own token count) (docs/text.md, docs/st.md).

A prompt (`rows(items, prompt=...)` or `prompt_name=...`, resolved by `TextSpec.resolve_prompt`, which
applies the spec's default prompt when neither is given) is put right before the text: in `clean` mode after the template's head and instruction, its tokens pooled unless
`include_prompt` is False; in `compat` mode it becomes part of the document (pooled, as llm2vec pools
the whole document); in `st` mode as sentence-transformers does.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Set as AbstractSet

import numpy as np

from l2v.errors import InputError
from l2v.text.batch import Batch
from l2v.text.spec import TextSpec

SEP = "!@#$%^&*()"  # llm2vec 0.2.3's instruction/document separator (llm2vec.py L186, L301-303)


def _check_one(t, what: str) -> str:
    if isinstance(t, bytes):
        try:
            t = t.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{what} is not valid UTF-8 (byte 0x{t[e.start]:02x} at offset {e.start})",
                             hint="decode it with the right encoding first") from e
    if not isinstance(t, str):
        raise InputError(f"{what} is a {type(t).__name__}, not a string")
    try:
        t.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what} holds a character that is not valid UTF-8 at offset {e.start}",
                         hint="it was probably decoded with errors='surrogateescape'") from e
    return t


def _as_list(items) -> list:
    """One text, or an ordered collection of them. A dict or a set is refused: a set has no order to
    return the vectors in, and a dict would be embedded by its keys."""
    if isinstance(items, (str, bytes)):
        items = [items]
    if isinstance(items, (Mapping, AbstractSet)):
        raise InputError(f"texts must be a string or a list of strings, got a {type(items).__name__}",
                         hint="pass list(...) of the texts in the order you want the vectors back")
    if not isinstance(items, Iterable):
        raise InputError(f"texts must be a string or a list of strings, got {type(items).__name__} {items!r:.40}",
                         hint="e.g. encode(['first text', 'second text'])")
    items = list(items)
    if not items:
        raise InputError("the text list is empty", hint="pass at least one text")
    return items


def check_texts(texts) -> list[str]:
    """Validate user texts: a non-empty list of str (or UTF-8 bytes); a clear error names the bad item."""
    return [_check_one(t, f"text {i}") for i, t in enumerate(_as_list(texts))]


def check_items(items) -> list[tuple[str | None, str]]:
    """Strings and `(instruction, text)` pairs (tuple or list of two; instruction may be None).

    A top-level tuple is a sequence of items, not a pair: embed one pair as `[(instruction, text)]`.
    """
    out = []
    for i, it in enumerate(_as_list(items)):
        if isinstance(it, (tuple, list)):
            if len(it) != 2:
                raise InputError(f"item {i} is a {type(it).__name__} of {len(it)}; an (instruction, text) "
                                 "pair holds 2 strings")
            instr = None if it[0] is None else _check_one(it[0], f"the instruction of item {i}")
            out.append((instr, _check_one(it[1], f"the text of item {i}")))
        else:
            out.append((None, _check_one(it, f"text {i}")))
    return out


def eol_normalize(s: str) -> str:
    """The sentence clean-up of the PromptEOL / MetaEOL evaluation code: end with a full stop, double
    quotes become single quotes (the template quotes the text), a final '?' becomes '.'."""
    s = s.strip()
    if s and s[-1] not in ".?\"'":
        s += "."
    s = s.replace('"', "'")
    if s and s[-1] == "?":
        s = s[:-1] + "."
    return s


class Preprocessor:
    """Render, tokenise, truncate to `max_length`, pad on `padding_side`, and mark the pooled tokens.

    `vocab_rows`: the model's embedding rows; a text that tokenises to an id at or beyond them (an added
    special token spelled out in the text, e.g. Gemma 3's `<image_soft_token>`) is an `InputError` here
    rather than an index error inside the graph."""

    def __init__(self, tokenizer, spec: TextSpec | None = None, vocab_rows: int | None = None):
        self.tokenizer = tokenizer
        self.spec = spec or TextSpec()
        self.vocab_rows = vocab_rows
        self._prompt_lengths: dict[str, int] = {}
        if tokenizer.pad_token_id is None:
            raise InputError("the tokenizer has no pad token", hint="the artifact's tokenizer must define one")
        eos = tokenizer.eos_token_id
        self.eos_id = eos if eos is not None else tokenizer.pad_token_id

    @property
    def views(self) -> int:
        """Rows per item: `rows()` returns them item-major; the encoder averages each item's rows."""
        return self.spec.views

    # ---------------------------------------------------------------- text before templating
    def doc_tokens(self, text: str) -> int:
        """llm2vec's document length: no special tokens, truncated to max_length (llm2vec.py L276-284)."""
        enc = self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.spec.max_length)
        return len(enc["input_ids"])

    def truncate_document(self, text: str) -> str:
        """`doc_max_length`: llm2vec.py L286-298, whole words kept, re-joined with single spaces.

        The reference empties a document that has fewer words than it needs to drop (one long word,
        or Chinese without spaces); the clean mode then cuts it at a token boundary instead."""
        limit, original = self.spec.doc_max_length, text
        n = self.doc_tokens(text)
        while n > limit:
            words = text.split()
            text = " ".join(words[: int(len(words) * (limit / n))])
            n = self.doc_tokens(text)
        if self.spec.mode == "clean" and not text and original.strip():
            text = self._token_cut(original, limit)
        return text

    def _token_cut(self, text: str, limit: int) -> str:
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        k = min(limit, len(offsets))
        while k > 0:
            cut = text[: offsets[k - 1][1]]
            if self.doc_tokens(cut) <= limit:  # a character split over byte tokens may cost one more
                return cut
            k -= 1
        return ""

    def _prepare(self, text: str) -> str:
        if self.spec.doc_max_length:
            text = self.truncate_document(text)
        if self.spec.text_normalize == "eol":
            text = eol_normalize(text)
        return text

    def _instruction(self, i: int, instr: str | None, template: str, present: bool) -> str:
        if not present:
            return ""
        if "{instruction}" not in template:
            raise InputError(f"item {i} has an instruction, but this artifact's template {template!r} has no "
                             "{instruction} slot", hint="pass plain strings, or export with a template that has one")
        return self.spec.instruction_format.replace("{instruction}", instr.strip())

    # ---------------------------------------------------------------- clean: spans from offsets
    def _clean_row(self, i: int, instr: str | None, text: str, template: str,
                   prompt: str | None = None) -> tuple[list[int], list[int]]:
        spec, tok = self.spec, self.tokenizer
        if spec.strip_text:
            text = text.rstrip()
        head, tail = template.split("{text}")
        rendered = self._instruction(i, instr, template, bool(instr and instr.strip()))
        head = head.replace("{instruction}", rendered)
        if prompt:  # before the text; pooled with it unless include_prompt is False
            if spec.include_prompt:
                text = prompt + text
            else:
                head = head + prompt
        start, stop = len(head), len(head) + len(text)
        plain = not head and not tail
        if not plain and not getattr(tok, "is_fast", True):
            raise InputError(f"template {template!r} or an instruction needs character offsets, which this "
                             f"slow tokenizer ({type(tok).__name__}) cannot give",
                             hint="use a fast tokenizer (tokenizer.json), or --text-mode compat with --preset llm2vec")
        enc = tok(head + text + tail, add_special_tokens=spec.add_special_tokens, truncation=False,
                  return_special_tokens_mask=True, return_offsets_mapping=not plain)
        ids = list(enc["input_ids"])
        added = list(enc["special_tokens_mask"]) if spec.add_special_tokens else [0] * len(ids)
        offsets = enc["offset_mapping"] if not plain else [(0, 1)] * len(ids)
        # 0 prefix (instruction, template head), 1 text, 2 suffix, -1 added by the tokenizer (BOS, ...)
        kind = [-1 if a else (1 if e > start and s < stop else (2 if e > start else 0))
                for (s, e), a in zip(offsets, added)]
        need_eos = spec.append_eos and (not ids or ids[-1] != self.eos_id)
        excess = len(ids) + need_eos - spec.max_length
        if excess > 0:  # drop the end of the text; instruction and suffix (chat end, eos) stay
            doc = [j for j, k in enumerate(kind) if k == 1]
            if excess > len(doc):
                raise InputError(f"item {i}: instruction and template take {len(ids) + need_eos - len(doc)} tokens, "
                                 f"more than max_length {spec.max_length}", hint="shorten the instruction")
            drop = set(doc[len(doc) - excess:])
            ids = [t for j, t in enumerate(ids) if j not in drop]
            kind = [k for j, k in enumerate(kind) if j not in drop]
        pooled = [1 if k > 0 or (k == -1 and spec.pool_special_tokens) else 0 for k in kind]
        if need_eos or not any(pooled):
            # eos pooling, or an empty text: the eos token stands for it so the vector stays defined
            if len(ids) >= spec.max_length:
                raise InputError(f"item {i}: no room for the text within max_length {spec.max_length}",
                                 hint="shorten the instruction")
            ids.append(self.eos_id)
            pooled.append(1)
        return ids, pooled

    # ---------------------------------------------------------------- compat: llm2vec 0.2.3 verbatim
    def _compat_row(self, i: int, instr: str | None, text: str, template: str,
                    prompt: str | None = None) -> tuple[list[int], list[int]]:
        spec, tok = self.spec, self.tokenizer
        text = (prompt or "") + text  # a prompt is part of the document, which llm2vec pools whole
        head, tail = template.split("{text}")
        pre, mid = head.split("{instruction}") if "{instruction}" in head else (head, "")
        # llm2vec.py L300-304: f"{instruction.strip()} {SEP}{text}" if instruction else f"{SEP}{text}"
        body = self._instruction(i, instr, template, bool(instr)) + mid + SEP + text
        if spec.strip_text:  # L147-179: a chat template or eos pooling strips the joined string
            body = body.strip()
        full = pre + body + tail + (spec.eos_text or "")
        parts = full.split(SEP)  # L185-188
        doc_part, original = (parts[1] if len(parts) > 1 else ""), "".join(parts)
        ids = list(tok(original, add_special_tokens=spec.add_special_tokens, truncation=True,
                       max_length=spec.max_length)["input_ids"])  # L190-196
        if not ids:  # nothing at all (empty text, no template, no special tokens): llm2vec would pool a row of
            # padding (NaN); the eos token alone gives a defined vector, as in the clean and st modes
            return [self.eos_id], [1]
        n = min(self.doc_tokens(doc_part), len(ids))  # L198-220: the last n positions under left padding
        if n == 0:  # nothing marked: get_pooling's `[-0:]` slice takes the whole row (L251),
            # weighted_mean's weights stay 0 (L260)
            return ids, [0 if spec.pooling == "weighted_mean" else 1] * len(ids)
        return ids, [0] * (len(ids) - n) + [1] * n

    # ---------------------------------------------------------------- st: sentence-transformers verbatim
    def prompt_length(self, prompt: str) -> int:
        """sentence-transformers `Transformer._get_prompt_length`: the prompt tokenised alone (special
        tokens added, truncated like a text), minus one when its last token is a special token (an eos
        the tokenizer appends)."""
        if prompt not in self._prompt_lengths:
            tok = self.tokenizer
            ids = tok(prompt, add_special_tokens=self.spec.add_special_tokens, truncation=True,
                      max_length=self.spec.max_length)["input_ids"]
            n = len(ids) - int(bool(ids) and ids[-1] in set(tok.all_special_ids))
            self._prompt_lengths[prompt] = n
        return self._prompt_lengths[prompt]

    def _st_row(self, i: int, instr: str | None, text: str, template: str,
                prompt: str | None = None) -> tuple[list[int], list[int]]:
        """`prompt + text` tokenised as one string with truncation to max_length (base/modules/transformer.py
        `preprocess`); pooled: every token, or with include_prompt False every token after the first
        `prompt_length(prompt)` (sentence_transformer/modules/pooling.py `_exclude_prompt_from_mask`: a
        count of tokens, not a character span). An empty row gets the eos token, so its vector is defined."""
        if instr is not None:
            raise InputError(f"item {i} is an (instruction, text) pair; this sentence-transformers artifact takes "
                             "plain texts", hint="pass the instruction as prompt=... (or a prompt_name)")
        full = template.replace("{text}", (prompt or "") + text)
        ids = list(self.tokenizer(full, add_special_tokens=self.spec.add_special_tokens, truncation=True,
                                  max_length=self.spec.max_length)["input_ids"])
        if not ids:
            return [self.eos_id], [1]
        skip = min(self.prompt_length(prompt), len(ids)) if prompt and not self.spec.include_prompt else 0
        return ids, [0] * skip + [1] * (len(ids) - skip)

    # ---------------------------------------------------------------- public API
    def rows(self, items, prompt: str | None = None, prompt_name: str | None = None) -> list[tuple[list[int], list[int]]]:
        """Validated, tokenised, truncated rows `(ids, pooled)`, `views` per item (item-major), unpadded.
        `prompt` (a string) or `prompt_name` (one of the spec's prompts) is put before every text (see the
        module docstring); neither: the spec's default prompt, if it names one (`prompt=""`: no prompt)."""
        row = {"compat": self._compat_row, "st": self._st_row}.get(self.spec.mode, self._clean_row)
        prompt = self.spec.resolve_prompt(prompt_name, prompt)
        out = []
        for i, (instr, text) in enumerate(check_items(items)):
            text = self._prepare(text)
            out += [row(i, instr, text, t, prompt) for t in self.spec.templates]
        if self.vocab_rows is not None:
            self.check_ids(out)
        return out

    def check_ids(self, rows) -> None:
        """Every id must have an embedding row (see the class docstring)."""
        limit = self.vocab_rows
        for j, (ids, _) in enumerate(rows):
            bad = [t for t in ids if t >= limit or t < 0]
            if bad:
                token = self.tokenizer.convert_ids_to_tokens(int(bad[0])) if bad[0] >= 0 else None
                raise InputError(f"text {j // self.views} produces token id {bad[0]} ({token!r}), beyond the "
                                 f"model's {limit} embedding rows", hint="that special token cannot be embedded; "
                                 "remove its spelling from the text")

    def batch(self, items, prompt: str | None = None, prompt_name: str | None = None) -> Batch:
        return self.pad(self.rows(items, prompt, prompt_name))

    def pad(self, rows: list[tuple[list[int], list[int]]]) -> Batch:
        width = max(len(ids) for ids, _ in rows)
        n = len(rows)
        input_ids = np.full((n, width), self.tokenizer.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        pooling = np.zeros((n, width), dtype=np.int64)
        for i, (ids, pooled) in enumerate(rows):
            sl = slice(width - len(ids), width) if self.spec.padding_side == "left" else slice(0, len(ids))
            input_ids[i, sl] = ids
            attention[i, sl] = 1
            pooling[i, sl] = pooled
        return Batch(input_ids, attention, pooling)
