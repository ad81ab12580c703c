"""CLI: one-line errors and exit codes (no model is loaded)."""
import pytest

from l2v.cli.bench import main


def test_missing_data_dir_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("L2V_DATA_DIR", raising=False)
    code = main([str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: no data dir") and "l2v-fetch-data DIR" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_flags_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path), "--batch-sizes", "1,x"]) != 0
    assert "--batch-sizes '1,x' must be" in capsys.readouterr().err
    assert main([str(tmp_path), "--backends", "torch,tpu"]) != 0
    assert "unknown tpu" in capsys.readouterr().err


def test_debug_shows_the_exception(tmp_path, monkeypatch):
    from l2v.errors import InputError

    monkeypatch.delenv("L2V_DATA_DIR", raising=False)
    with pytest.raises(InputError):
        main([str(tmp_path), "--debug", "--quiet"])


def test_not_an_artifact(tmp_path, capsys):
    from fake_data import write_data_dir

    data = write_data_dir(tmp_path)
    code = main([str(tmp_path / "missing_model"), "--data-dir", str(data), "--out", str(tmp_path / "o"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_no_memory_probe_reaches_the_config(tmp_path, monkeypatch):
    """--no-memory-probe sets BenchConfig.memory_probe=False (without it the config's default, True, stays)."""
    import l2v.bench.run as run_mod
    from l2v.cli.bench import main

    seen = []

    def fake_run(config):
        seen.append(config.memory_probe)
        raise SystemExit(0)

    monkeypatch.setattr(run_mod, "run_benchmark", fake_run)
    for argv, want in ((["--no-memory-probe"], False), ([], True)):
        try:
            main([str(tmp_path), "--quiet", *argv])
        except SystemExit:
            pass
        assert seen[-1] is want
