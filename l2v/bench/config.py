"""`BenchConfig`: every knob of a benchmark run, validated once, with the default and `--quick` scales."""
from __future__ import annotations

from dataclasses import dataclass, field

from l2v.bench.stats import DEFAULT, QUICK, TimingPolicy
from l2v.errors import InputError

BACKENDS = ("torch", "ort", "trt", "ov")
# report labels: the onnx backend is "ort" (ONNX Runtime), the openvino backend "ov"
ALIASES = {"onnx": "ort", "openvino": "ov"}


def parse_int_list(text: str, flag: str) -> tuple[int, ...]:
    """"1,8,32" -> (1, 8, 32); a clear error naming the flag otherwise."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        values = tuple(int(t) for t in items)
    except ValueError as e:
        raise InputError(f"{flag} {text!r} must be a comma-separated list of integers") from e
    if not values or min(values) < 1:
        raise InputError(f"{flag} {text!r} must list positive integers")
    return tuple(sorted(set(values)))


def parse_backends(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(ALIASES.get(t.strip(), t.strip()) for t in str(text).split(",") if t.strip()))
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise InputError(f"--backends {text!r}: unknown {', '.join(bad) or 'empty list'}",
                         hint=f"choose from {', '.join(BACKENDS)} (the hf baseline always runs)")
    return names


@dataclass
class BenchConfig:
    targets: list[str]
    backends: tuple[str, ...] = BACKENDS
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    seq_lens: tuple[int, ...] = (32, 128, 512)
    corpus: str = "bbc"
    data_dir: str | None = None
    out: str = "bench-out"
    memory_cap_gb: float | None = 24.0
    device: str = "auto"
    threads: int | None = None
    cell_budget_s: float = 30.0  # a grid cell predicted to cost more (warm-up + 3 calls) is skipped, with a row
    eval_texts: int = 120  # per labelled corpus, stratified, after de-duplication (Lee always has its 50)
    eval_max_length: int = 128  # truncation for the quality/fidelity/length-mix texts
    mix_batch: int = 32  # batch size of the length-mix run (the runtime's default)
    sequential: bool = False  # measure runners one at a time (less memory) instead of round-robin
    memory_probe: bool = True  # each runner's peak RSS in a fresh subprocess (False: a "skipped" row instead)
    full_quality: bool = False  # also score task quality for fp32 variants other than the reference
    timing: TimingPolicy = field(default_factory=lambda: DEFAULT)
    probe_seconds: float = 0.5  # per dtype of the matmul peak probe
    quick: bool = False
    seed: int = 0
    progress: bool = True
    command: str = ""
    prompt_name: str | None = None  # a named prompt of the artifact for the quality/fidelity texts (ST models)

    @classmethod
    def quick_defaults(cls, **overrides) -> "BenchConfig":
        base = dict(batch_sizes=(1, 4), seq_lens=(16, 64), eval_texts=30, eval_max_length=48, mix_batch=8,
                    cell_budget_s=5.0, timing=QUICK, probe_seconds=0.2, quick=True)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def check(self) -> "BenchConfig":
        if not self.targets:
            raise InputError("no ARTIFACT_OR_MODEL given", hint="pass an artifact directory (l2v-export --out DIR)")
        if self.memory_cap_gb is not None and self.memory_cap_gb <= 0:
            raise InputError(f"--memory-cap-gb {self.memory_cap_gb} must be positive")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"--device {self.device!r} is not supported", hint="use auto, cpu or cuda")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads} must be positive")
        for name in ("cell_budget_s", "eval_texts", "eval_max_length", "mix_batch"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name.replace('_', '-')} must be positive")
        return self
