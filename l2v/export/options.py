"""Export options, checked before any model is loaded (a typo fails in well under 2 s, naming the value)."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from l2v.errors import InputError

DTYPE_CHOICES = ("fp32", "fp16", "bf16")
STREAM_CHOICES = ("auto", "on", "off")


def parse_dtypes(value) -> list[str]:
    """--dtype names the graphs written: "fp16" (only that graph), "fp32,fp16" (several), or a list."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise InputError(f"--dtype {value!r} is not supported", hint=f"use one of {', '.join(DTYPE_CHOICES)}, or a list")
    out = []
    for d in items:
        d = d.strip() if isinstance(d, str) else d
        if d not in DTYPE_CHOICES:
            raise InputError(f"--dtype {value!r}: {d!r} is not a graph dtype",
                             hint=f"use one of {', '.join(DTYPE_CHOICES)}, or a comma-separated list (fp32,fp16)")
        if d in out:
            raise InputError(f"--dtype {value!r} names {d} twice")
        out.append(d)
    if not out:
        raise InputError("--dtype is empty", hint="e.g. --dtype fp32 or --dtype fp16")
    return out


@dataclass
class ExportOptions:
    adapters: list[str] = field(default_factory=list)
    unmerged_last: bool = False  # apply the last adapter as a LoRA side branch instead of merging it
    pooling: str | None = None  # None: the preset's (l2v.text.presets)
    dtype: str | list = "fp32"  # the graph(s) written: "fp32", "fp16", "bf16", or several ("fp32,fp16")
    max_length: int | None = None  # None: 512, or the model's context if shorter
    normalize: bool = False
    dim: int | None = None
    causal: bool | None = None  # None: the preset's
    preset: str | None = None  # llm2vec (default), e5, prompteol, pcot, ke, metaeol
    template: str | None = None  # overrides the preset's template ({text}, optional {instruction})
    chat_template: str = "auto"
    text_mode: str | None = None  # None: the preset's (llm2vec: "compat", bug-for-bug llm2vec 0.2.3; else "clean")
    doc_max_length: int | None = -1  # -1: the preset's; 0/None: off
    overwrite: bool = False
    opset: int = 18
    torch_weights: bool | None = None  # None: yes in memory (as before), no when streamed (opt-in: one copy)
    stream: str = "auto"  # auto: streamed when the fp32 weights pass 2 GiB or would not fit; on; off
    max_memory_gb: float | None = None  # None: what the machine has available
    tokenizer: str | None = None
    texts: list[str] | None = None  # validation texts; default: the packaged real sentences
    demo: bool = False
    progress: bool = True
    verbose: bool = False
    quant: list[str] = field(default_factory=list)  # l2v.quantize methods, added after the graph validates
    min_recall: float | None = None
    calib: str | None = None
    eval: str | None = None
    trt: bool = False  # add trt-<precision> variants: TensorRT-ready graphs + build plans (+ engines where possible)
    trt_precisions: list[str] = field(default_factory=list)  # default ["fp16"]
    trt_shapes: str | None = None  # optimization profiles, batch=MIN:OPT:MAX,seq=MIN:OPT:MAX[;...]
    quant_plan: object = field(default=None, repr=False)  # set by check(): the checked QuantPlan
    st: object = field(default=None, repr=False)  # l2v.model.st.STModel when MODEL is a sentence-transformers folder
    dtypes: list = field(default_factory=list)  # set by check(): the parsed --dtype

    @property
    def default_graph(self) -> str:
        """The artifact's default variant: fp32 when written, else the first graph named."""
        return "fp32" if "fp32" in self.dtypes else self.dtypes[0]

    def check(self) -> "ExportOptions":
        """Every option on its own and in combination; the adapters' configs; the quantization plan
        (its text files read). Raises `InputError`/`AdapterError` naming the bad value."""
        from l2v.text.presets import default_text_mode, resolve_export

        if self.st is not None:
            self._check_st()
        else:
            self.preset, self.pooling, self.causal = resolve_export(
                self.preset, self.pooling, self.causal, self.template, self.chat_template, self.text_mode)
            self.text_mode = default_text_mode(self.preset, self.text_mode)
        self.dtypes = parse_dtypes(self.dtype)
        if self.stream not in STREAM_CHOICES:
            raise InputError(f"--stream {self.stream!r} is not supported", hint=f"use one of {', '.join(STREAM_CHOICES)}")
        if self.max_memory_gb is not None and (isinstance(self.max_memory_gb, bool)
                                               or not isinstance(self.max_memory_gb, (int, float))
                                               or not self.max_memory_gb > 0):
            raise InputError(f"--max-memory-gb {self.max_memory_gb!r} must be a positive number of GiB")
        if self.unmerged_last and self.stream == "on":
            raise InputError("--keep-last-adapter-unmerged needs the in-memory export, not --stream on",
                             hint="drop one of them")
        if self.max_length is not None:
            _positive_int(self.max_length, "--max-length", 2)
        if self.dim is not None:
            _positive_int(self.dim, "--dim", 1)
        self._check_opset()
        self._check_adapters()
        self._check_trt()
        if self.min_recall is not None and not self.quant:
            raise InputError(f"--min-recall {self.min_recall} without --quant or --trt gates nothing",
                             hint="add --quant METHOD (or --trt), or drop --min-recall")
        if self.quant:
            from l2v.quantize.plan import plan_quantization

            if self.unmerged_last:
                raise InputError("--quant/--trt cannot be combined with --keep-last-adapter-unmerged",
                                 hint="quantize a merged export (drop --keep-last-adapter-unmerged)")
            self.quant_plan = plan_quantization(self.quant, self.calib, self.eval, self.min_recall,
                                                torch_weights=self.torch_weights is not False, model_available=True)
            clash = [n for n in self.quant_plan.names if n in self.dtypes]
            if clash:
                raise InputError(f"--quant {clash[0]} would replace the {clash[0]} graph that --dtype writes",
                                 hint=f"drop one, or name the variant: --quant '{clash[0]}:name=...'")
        elif self.calib is not None or self.eval is not None:
            raise InputError("--calib/--eval without --quant are not used", hint="add --quant METHOD, or drop them")
        return self

    def _check_st(self) -> None:
        """A sentence-transformers folder brings its own recipe (modules.json): the flags that would replace
        parts of it are refused; --causal/--no-causal, --normalize, --dim and --max-length apply."""
        from l2v.text.presets import ST_PRESET

        given = {"--preset": self.preset, "--template": self.template, "--pooling": self.pooling,
                 "--text-mode": self.text_mode, "--chat-template": None if self.chat_template == "auto" else 1,
                 "--doc-max-length": None if self.doc_max_length == -1 else 1}
        for flag, value in given.items():
            if value is not None:
                raise InputError(f"{flag} does not apply to a sentence-transformers folder: its modules.json sets "
                                 "the pooling and the text recipe", hint=f"drop {flag}, or export the folder's "
                                 f"Transformer directory ({self.st.transformer_dir}) as a plain model")
        self.preset, self.pooling, self.text_mode = ST_PRESET, self.st.pooling, "st"
        self.normalize = bool(self.normalize or self.st.normalize)
        if self.dim is None:
            self.dim = self.st.truncate_dim
    def _check_trt(self) -> None:
        """--trt adds one `trt-<precision>` quantization config per precision (gated like --quant)."""
        from l2v.quantize.config import TrtConfig, trt_config

        if not self.trt:
            if self.trt_precisions or self.trt_shapes:
                flag = "--trt-precision" if self.trt_precisions else "--trt-shapes"
                raise InputError(f"{flag} without --trt is not used", hint="add --trt")
            return
        if isinstance(self.trt_precisions, str):
            self.trt_precisions = [self.trt_precisions]
        precisions = list(dict.fromkeys(self.trt_precisions or ["fp16"]))
        configs = [trt_config(p, self.trt_shapes) for p in precisions]
        if self.max_length is not None:
            from l2v.trt.plan import parse_shapes

            parse_shapes(self.trt_shapes, self.max_length)
        taken = {q.variant if isinstance(q, TrtConfig) else str(q).split(":")[0] for q in self.quant}
        self.quant = list(self.quant) + [c for c in configs if c.variant not in taken]

    @property
    def trt_variants(self) -> list[str]:
        from l2v.quantize.config import TrtConfig

        return [q.variant for q in self.quant if isinstance(q, TrtConfig)]

    def _check_opset(self) -> None:
        from l2v.export.spec import MIN_OPSET

        import onnx

        newest = onnx.defs.onnx_opset_version()
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= newest:
            raise InputError(f"--opset {self.opset!r} is not supported",
                             hint=f"use {MIN_OPSET}..{newest} (this onnx {onnx.__version__})")

    def _check_adapters(self) -> None:
        from l2v.model.adapters import read_config

        if isinstance(self.adapters, (str, bytes)) or not all(isinstance(a, str) for a in self.adapters):
            raise InputError(f"adapters must be a list of directory paths, got {self.adapters!r}",
                             hint="e.g. adapters=['mntp', 'simcse']")
        self.adapters = list(self.adapters)
        seen = set()
        for a in self.adapters:
            from pathlib import Path

            key = Path(a).expanduser().resolve()
            if key in seen:
                raise InputError(f"--adapter {a!r} is given twice", hint="each adapter is merged once, in order")
            seen.add(key)
            read_config(a)
        if self.unmerged_last and not self.adapters:
            raise InputError("--keep-last-adapter-unmerged needs at least one --adapter",
                             hint="pass the adapter(s) to apply, or drop the flag")


def _positive_int(value, flag: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{flag} {value!r} must be an integer >= {minimum}")


def default_texts() -> list[str]:
    text = resources.files("l2v.data").joinpath("validation.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]
