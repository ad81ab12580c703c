"""`l2v-bench`: speed, memory, roofline, fidelity and task quality of exported artifacts, each backend
against a Hugging Face baseline and ONNX Runtime fp32 measured in the same run.

Entry point: `l2v.bench.run.run_benchmark(BenchConfig)`; the CLI is `l2v.cli.bench`. Heavy libraries
are imported only inside the functions that use them.
"""
