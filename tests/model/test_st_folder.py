"""Reading sentence-transformers folders (l2v.model.st): what is taken from each file, and every refusal
names the module type or the key. JSON-level tests: the folders are built by tests/st_tiny.py."""
import json

import pytest

from l2v.errors import UnsupportedModuleError
from l2v.model.st import read_st_folder
from st_tiny import GEMMA_PROMPTS, save_st_folder


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    return save_st_folder(tmp_path_factory.mktemp("st") / "gemma", "gemma3_text", use_bidirectional_attention=True,
                          dense=[(96, "Identity", False), (64, "Tanh", True)], prompts=GEMMA_PROMPTS,
                          default_prompt_name="document", truncate_dim=32)


def _edit(path, fn):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(fn(data)))


def test_reads_every_module_and_setting(gemma_dir):
    st = read_st_folder(gemma_dir)
    assert (st.pooling, st.pooling_st, st.include_prompt, st.normalize) == ("mean", "mean", True, True)
    assert [d.spec for d in st.dense] == [
        {"in_features": 64, "out_features": 96, "bias": False, "activation": "Identity", "residual": False},
        {"in_features": 96, "out_features": 64, "bias": True, "activation": "Tanh", "residual": False}]
    assert st.prompts == GEMMA_PROMPTS and st.default_prompt_name == "document"
    assert (st.similarity_fn_name, st.truncate_dim, st.max_seq_length, st.version) == ("cosine", 32, 128, "5.1.0")
    assert [m["type"].rsplit(".", 1)[1] for m in st.modules] == ["Transformer", "Pooling", "Dense", "Dense", "Normalize"]


@pytest.mark.parametrize("mode,expected", [("cls", "first_token"), ("lasttoken", "last_token"),
                                           ("weightedmean", "position_weighted_mean"), ("max", "max"),
                                           ("mean_sqrt_len_tokens", "mean_sqrt_len")])
def test_pooling_modes_old_and_new_config_keys(tmp_path, mode, expected):
    for legacy in (True, False):
        d = save_st_folder(tmp_path / f"{mode}{legacy}", pooling=mode, legacy_pooling=legacy, include_prompt=False)
        st = read_st_folder(d)
        assert (st.pooling, st.pooling_st, st.include_prompt) == (expected, mode, False)


@pytest.mark.parametrize("module", ["sentence_transformers.models.LayerNorm",
                                    "sentence_transformers.models.WeightedLayerPooling",
                                    "sentence_transformers.models.Router", "my_package.CustomPooling"])
def test_unexported_module_is_refused_by_type(tmp_path, module):
    d = save_st_folder(tmp_path / "m", extra_modules=[(module, "9_Extra")])
    with pytest.raises(UnsupportedModuleError, match=module.replace(".", r"\.")):
        read_st_folder(d)


def test_dropout_is_a_no_op_and_stack_order_is_checked(tmp_path):
    d = save_st_folder(tmp_path / "drop", extra_modules=[("sentence_transformers.models.Dropout", "3_Dropout")])
    assert read_st_folder(d).normalize  # Normalize then Dropout: accepted, Dropout ignored
    d = save_st_folder(tmp_path / "order", dense=[(32, "Tanh", True)])
    _edit(d / "modules.json", lambda m: [m[0], m[2], m[1], m[3]])  # Dense before Pooling
    with pytest.raises(UnsupportedModuleError, match="Transformer -> Dense -> Pooling -> Normalize"):
        read_st_folder(d)


@pytest.mark.parametrize("edit,match", [
    (("1_Pooling/config.json", lambda c: {**c, "pooling_mode_max_tokens": True}), "2 modes"),
    (("2_Dense/config.json", lambda c: {**c, "activation_function": "my_pkg.Swish"}), "my_pkg.Swish"),
    (("2_Dense/config.json", lambda c: {**c, "module_input_name": "token_embeddings"}), "module_input_name"),
    (("sentence_bert_config.json", lambda c: {**c, "do_lower_case": True}), "do_lower_case"),
    (("sentence_bert_config.json", lambda c: {**c, "modality_config": {"text": {}, "message": {}}}), "message"),
    (("sentence_bert_config.json", lambda c: {**c, "config_kwargs": {"is_causal": False}}), "config_kwargs"),
    (("config_sentence_transformers.json", lambda c: {**c, "default_prompt_name": "nope"}), "'nope'"),
    (("config_sentence_transformers.json", lambda c: {**c, "model_type": "SparseEncoder"}), "SparseEncoder"),
    (("config_sentence_transformers.json", lambda c: {**c, "similarity_fn_name": "maxsim"}), "maxsim"),
])
def test_settings_we_cannot_reproduce_are_refused_by_key(tmp_path, edit, match):
    d = save_st_folder(tmp_path / "k", dense=[(32, "Tanh", True)], prompts={"query": "q: "})
    _edit(d / edit[0], edit[1])
    with pytest.raises(UnsupportedModuleError, match=match):
        read_st_folder(d)


def test_path_outside_the_folder_is_refused(tmp_path):
    d = save_st_folder(tmp_path / "p")
    _edit(d / "modules.json", lambda m: [m[0], {**m[1], "path": "../elsewhere"}, m[2]])
    with pytest.raises(UnsupportedModuleError, match="outside the folder"):
        read_st_folder(d)


def test_cli_names_the_module_type_without_a_traceback(tmp_path, capsys):
    from l2v.cli.export import main

    d = save_st_folder(tmp_path / "cli", extra_modules=[("sentence_transformers.models.LayerNorm", "3_LayerNorm")])
    assert main([str(d), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sentence_transformers.models.LayerNorm" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_flags_that_replace_the_folder_recipe_are_refused_before_loading(tmp_path):
    from l2v.errors import InputError
    from l2v.export.pipeline import export_model

    d = save_st_folder(tmp_path / "flags")
    for kw, flag in [({"pooling": "mean"}, "--pooling"), ({"preset": "e5"}, "--preset"),
                     ({"text_mode": "clean"}, "--text-mode"), ({"template": "x {text}"}, "--template")]:
        with pytest.raises(InputError, match=flag):
            export_model(str(d), tmp_path / "o", progress=False, **kw)
    assert not (tmp_path / "o").exists()
