"""`import l2v` pulls in no torch, no onnxruntime, no triton, no tensorrt (nor pyarrow / ray for l2v.embed)."""
import subprocess
import sys


def test_import_is_lean():
    code = ("import sys, l2v, l2v.errors, l2v.kernels, l2v.quantize, l2v.bench, l2v.export, l2v.runtime, l2v.cli, "
            "l2v.embed, l2v.cli.embed, l2v.trt.plan, l2v.trt.engine, l2v.runtime.trt, l2v.cli.build_trt; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'triton', 'tensorrt', 'transformers', 'pyarrow', 'ray') "
            "if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by `import l2v`: {out.stdout}"
