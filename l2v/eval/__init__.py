"""Evaluation shared by the benchmark and quantization: real corpora (`corpora`) and metrics (`metrics`).

Dependency-light: numpy at import; scipy and scikit-learn only inside the functions that use them.
"""
