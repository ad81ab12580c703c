"""Every option is checked before any model is loaded: a typo fails in well under 2 s, naming the value,
exit 2, nothing written. (The CLI runs in-process: the timing is the check's, not Python's start-up.)"""
import time

import pytest

from l2v.cli.export import main
from tiny import save_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("ff") / "tiny", "llama")


@pytest.fixture(scope="module")
def warm():
    """Import what the checks import once, so each case times the check itself."""
    import onnx  # noqa: F401

    import l2v.export.options  # noqa: F401
    import l2v.quantize.plan  # noqa: F401
    from l2v.quantize.texts import default_eval_texts

    default_eval_texts()


@pytest.mark.parametrize("extra,pattern", [
    (["--quant", "int8-smoth"], "unknown quantization method 'int8-smoth'"),
    (["--quant", "w4:bits=3"], "bits=3 is not supported"),
    (["--quant", "w4", "--min-recall", "1.5"], "--min-recall 1.5 must be a number in (0, 1]"),
    (["--min-recall", "0.9"], "--min-recall 0.9 without --quant"),
    (["--quant", "w4", "--calib", "/nonexistent/calib.txt"], "does not exist"),
    (["--quant", "bnb-int8", "--no-torch-weights"], "--no-torch-weights drops"),
    (["--quant", "w4", "--quant", "w4"], "requested twice"),
    (["--quant", "w4:name=fp32"], "cannot be named 'fp32'"),
    (["--quant", "w4:name=../x"], "variant name '../x' is invalid"),
    (["--opset", "99"], "--opset 99 is not supported"),
    (["--max-length", "1"], "--max-length 1 must be an integer >= 2"),
    (["--dim", "0"], "--dim 0 must be an integer >= 1"),
    (["--adapter", "/nonexistent/adapter"], "is not a directory"),
    (["--keep-last-adapter-unmerged"], "needs at least one --adapter"),
    (["--pooling", "max"], "invalid choice"),
    (["--dtype", "fp8"], "'fp8' is not a graph dtype"),
    (["--dtype", "fp16,fp16"], "names fp16 twice"),
    (["--dtype", "fp32,fp16", "--quant", "fp16"], "would replace the fp16 graph"),
    (["--stream", "maybe"], "invalid choice"),
    (["--max-memory-gb", "0"], "--max-memory-gb 0.0 must be a positive number"),
    (["--stream", "on", "--keep-last-adapter-unmerged"], "needs the in-memory export"),
])
def test_bad_option_fails_fast(capsys, tmp_path, model_dir, warm, extra, pattern):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    try:
        code = main([str(model_dir), "--out", str(out), "--quiet", *extra])
    except SystemExit as e:  # argparse's own choices
        code = e.code
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2 and pattern in err, err
    assert took < 2.0, f"{extra}: {took:.2f} s"
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_non_text_calib_file_is_refused(capsys, tmp_path, model_dir, warm):
    bad = tmp_path / "random.bin"
    bad.write_bytes(bytes(range(256)) * 64)
    code = main([str(model_dir), "--out", str(tmp_path / "o"), "--quant", "int8-smooth", "--calib", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "is not text" in err and "random.bin" in err


def test_out_under_a_file_fails_before_loading(capsys, tmp_path, model_dir):
    f = tmp_path / "file"
    f.write_text("x")
    t0 = time.perf_counter()
    code = main([str(model_dir), "--out", str(f / "sub" / "art"), "--quiet"])
    assert code == 2 and "which is a file" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 2.0


def test_repeated_adapter_is_refused(capsys, tmp_path, model_dir):
    from helpers_adapters import llm2vec_adapters

    mntp, _ = llm2vec_adapters(model_dir, tmp_path)
    code = main([str(model_dir), "--out", str(tmp_path / "o"), "--adapter", str(mntp), "--adapter", str(mntp), "--quiet"])
    assert code == 2 and "is given twice" in capsys.readouterr().err


def test_max_length_beyond_the_context_names_both(capsys, tmp_path, model_dir):
    code = main([str(model_dir), "--out", str(tmp_path / "o"), "--max-length", "100000", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-length 100000 exceeds the model's context of 256 positions" in err


def test_quantize_cli_fails_fast_on_a_typo(capsys, tmp_path):
    from l2v.cli.quantize import main as qmain

    t0 = time.perf_counter()
    code = qmain([str(tmp_path / "no-artifact"), "--quant", "w5"])
    assert code == 2 and "unknown quantization method 'w5'" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 2.0
