"""Runtime: `load(dir, ...)` returns an `Encoder`; every variant runs behind one `Backend` interface
(backend.py: the registry of variant kinds). Imports neither `l2v.export` nor `l2v.quantize`."""
