"""What the export shows while it works: one numbered line per stage (`[k/N] what (t=..s)`, always, on
stderr), a bar over the batches of the long loops (the PyTorch reference, validation) and a ticking
elapsed-time bar while the ONNX exporter runs (it reports no progress of its own). Bars appear on a
terminal only (tqdm's `disable=None`), so logs and captured output hold the stage lines alone."""
from __future__ import annotations

import contextlib
import sys
import threading
import time


class Progress:
    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.step, self.t0 = enabled, total, 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        """Announce the next stage."""
        self.step += 1
        self.total = max(self.total, self.step)  # a stage not foreseen (TensorRT engines built) still counts
        self.say(f"[{self.step}/{self.total}] {what}")

    def say(self, line: str) -> None:
        if self.enabled:
            print(f"{line} (t={time.perf_counter() - self.t0:.0f}s)", file=sys.stderr, flush=True)

    def bar(self, iterable, desc: str, total: int | None = None):
        """`iterable` with a bar (on a terminal)."""
        if not self.enabled:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, unit="batch", leave=False, disable=None, file=sys.stderr)

    @contextlib.contextmanager
    def ticker(self, desc: str, every_s: float = 1.0):
        """An elapsed-time bar for a step that reports nothing itself (on a terminal)."""
        if not self.enabled:
            yield
            return
        from tqdm.auto import tqdm

        bar = tqdm(desc=desc, total=None, bar_format="{desc}: {elapsed}", leave=False, disable=None, file=sys.stderr)
        stop = threading.Event()

        def tick():
            while not stop.wait(every_s):
                bar.refresh()

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            bar.close()


def stage_count(opts, streamed: bool = False) -> int:
    """How many numbered stages an export with `opts` goes through (so `[k/N]` is true): resolve, load (or
    open the weights), reference, write tokenizer/weights/manifest, verify; then per graph: in memory one
    ONNX export (fp32, or a scratch fp32 for fp16) + the fp32 validation + fp16's conversion + bf16's own
    export; streamed, trace + write + validate each; plus merging adapters (in memory) and quantizing."""
    dtypes = getattr(opts, "dtypes", None) or [opts.dtype]
    if streamed:
        graphs = 3 * len(dtypes)
    else:
        graphs = (("fp32" in dtypes or "fp16" in dtypes) + ("fp32" in dtypes) + ("fp16" in dtypes)
                  + ("bf16" in dtypes) + bool(opts.adapters))
    return 5 + graphs + bool(opts.quant)
