"""Runtime: `load(dir, backend=...)` returns an `Encoder` (see encoder.py)."""
