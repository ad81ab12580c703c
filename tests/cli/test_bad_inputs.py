"""Every bad input is one line on stderr, a non-zero exit, no traceback, and nothing written."""
import json
import shutil

import pytest

from l2v.cli.export import main
from tiny import save_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("m") / "tiny", "llama")


def run(capsys, *argv):
    code = main(list(argv) + ["--quiet"])
    err = capsys.readouterr().err.strip()
    return code, err


def check(code, err, pattern, out_dir):
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert pattern in err, err
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(f".{out_dir.name}.tmp-*"))


def test_missing_model(capsys, tmp_path):
    out = tmp_path / "out"
    check(*run(capsys, str(tmp_path / "nope"), "--out", str(out)), "does not exist", out)


def test_dir_without_config(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    check(*run(capsys, str(tmp_path / "empty"), "--out", str(out)), "has no config.json", out)


def test_unsupported_architecture(capsys, tmp_path, model_dir):
    d = tmp_path / "gpt2"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (d / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    code, err = run(capsys, str(d), "--out", str(out))
    check(code, err, "architecture 'gpt2' is not supported", out)
    assert "llama" in err and "gemma3" in err  # names the supported ones


def test_truncated_safetensors(capsys, tmp_path, model_dir):
    d = tmp_path / "trunc"
    shutil.copytree(model_dir, d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    out = tmp_path / "out"
    check(*run(capsys, str(d), "--out", str(out)), "cannot load the weights", out)


def test_not_a_gguf(capsys, tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"PK\x03\x04 definitely a zip")
    out = tmp_path / "out"
    check(*run(capsys, str(f), "--out", str(out)), "is not a GGUF file", out)


def test_corrupt_gguf(capsys, tmp_path):
    f = tmp_path / "broken.gguf"
    f.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    out = tmp_path / "out"
    code, err = run(capsys, str(f), "--out", str(out))
    assert code != 0 and "broken.gguf" in err and "\n" not in err, err
    assert not out.exists()


def test_tokenizer_missing(capsys, tmp_path, model_dir):
    d = tmp_path / "notok"
    d.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_dir / name, d / name)
    out = tmp_path / "out"
    check(*run(capsys, str(d), "--out", str(out)), "no tokenizer found", out)


def test_adapter_for_another_base(capsys, tmp_path, model_dir):
    from helpers_adapters import make_lora

    wrong = make_lora(model_dir, tmp_path / "wrong", seed=3, mntp=False,
                      arch_overrides={"hidden_size": 32, "intermediate_size": 64})
    capsys.readouterr()  # what peft printed while the test made the adapter is not the CLI's output
    out = tmp_path / "out"
    code, err = run(capsys, str(model_dir), "--adapter", str(wrong), "--out", str(out))
    check(code, err, "the adapter's lora_", out)


def test_out_is_foreign_directory(capsys, tmp_path, model_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    code, err = run(capsys, str(model_dir), "--out", str(out), "--overwrite")
    assert code != 0 and "not an l2v artifact" in err and (out / "notes.txt").exists()


def test_bad_flag_values(capsys, tmp_path, model_dir):
    out = tmp_path / "out"
    check(*run(capsys, str(model_dir), "--out", str(out), "--dim", "100000"), "--dim 100000", out)
    check(*run(capsys, str(model_dir), "--out", str(out), "--max-length", "0"), "--max-length 0", out)
    check(*run(capsys, str(model_dir), "--out", str(out), "--opset", "13"), "opset 13", out)


def test_keep_last_adapter_unmerged_without_adapter(capsys, tmp_path, model_dir):
    out = tmp_path / "out"
    code, err = run(capsys, str(model_dir), "--out", str(out), "--keep-last-adapter-unmerged")
    assert code == 2
    check(code, err, "--keep-last-adapter-unmerged needs at least one --adapter (pass the adapter(s) to apply, "
          "or drop the flag)", out)


def test_hub_id_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    check(*run(capsys, "someorg/some-model", "--out", str(out)), "not in the local Hugging Face cache", out)
