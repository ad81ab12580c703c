"""The progress bar (texts/s from tqdm, tokens/s as its postfix, ETA) and the summary line."""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """Counts texts and tokens of this run; `initial` texts were done by earlier runs."""

    def __init__(self, total: int | None, initial: int = 0, enabled: bool = True, desc: str = "embed",
                 unit: str = "text"):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, file=sys.stderr)
        self.t0 = time.monotonic()
        self.texts, self.tokens, self._carry = 0, 0, 0.0
        self._lock = threading.Lock()

    def update(self, texts: float, tokens: int) -> None:
        with self._lock:
            self._carry += texts
            whole = int(self._carry)
            self._carry -= whole
            self.texts += whole
            self.tokens += int(tokens)
            self.bar.set_postfix_str(f"{self.tokens / max(self.elapsed, 1e-9):,.0f} tok/s", refresh=False)
            self.bar.update(whole)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def close(self) -> None:
        self.bar.close()


def summary(texts: int, tokens: int, seconds: float, skipped: int, rows: int, parts: int, out, resumed: int) -> str:
    s = max(seconds, 1e-9)
    head = f"embedded {texts:,} texts ({tokens:,} tokens) in {seconds:.1f}s: {texts / s:,.1f} texts/s, {tokens / s:,.0f} tokens/s"
    tail = f"; {skipped:,} rows skipped" if skipped else ""
    done = f"; {resumed:,} texts from an earlier run kept" if resumed else ""
    return f"{head}{tail}{done}; {rows:,} rows in {parts} parts in {out}"
