"""Official checkpoints: load all families, strict accounting, round trips, safety, SAM2 overrides."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sa2va import Sa2VACheckpointError, Sa2VAModel
from sa2va.checkpoints.convert import SAM2_SIDE_FILE, export_official
from sa2va.checkpoints.safe_io import CheckpointReader
from sa2va.cli import main as cli_main
from sa2va.testing import OFFICIAL_FIXTURES, teacher_forcing, tiny_sam2_params, write_official_checkpoint

SEGMENT = "<image>\nPlease segment the cube."
FIXTURES = list(OFFICIAL_FIXTURES)


@pytest.fixture(scope="module")
def official_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return {family: write_official_checkpoint(family, root / family) for family in FIXTURES}


def read_all(folder) -> dict[str, torch.Tensor]:
    reader = CheckpointReader(folder)
    return {k: reader.get(k) for k in reader.keys()}


@pytest.mark.parametrize("family", FIXTURES)
def test_official_checkpoint_loads_and_predicts(family, official_dirs, image):
    model = Sa2VAModel.from_pretrained(official_dirs[family], sam2_config=tiny_sam2_params())
    assert model.config.family == ("internvl" if family.startswith("internvl") else family)
    with teacher_forcing(model, "Sure, it is [SEG]."):
        result = model.predict_forward(image=image, text=SEGMENT)
    assert "[SEG]" in result["prediction"]
    assert len(result["prediction_masks"]) == 1 and result["prediction_masks"][0].shape == (1, 96, 128)
    # the untied lm_head and the shrunk vocabulary are kept
    assert model.get_output_embeddings().weight.shape[0] == len(model.processor.tokenizer)
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("family", FIXTURES)
def test_official_native_official_round_trip_is_bit_identical(family, official_dirs, tmp_path):
    source = official_dirs[family]
    model = Sa2VAModel.from_pretrained(source, sam2_config=tiny_sam2_params())
    native = tmp_path / "native"
    model.save_pretrained(native)
    reloaded = Sa2VAModel.from_pretrained(native)  # no override: our layout records its SAM2
    export_official(reloaded, tmp_path / "official")
    original, exported = read_all(source), read_all(tmp_path / "official")
    assert set(original) == set(exported)
    for key in original:
        assert original[key].dtype == exported[key].dtype and torch.equal(original[key], exported[key]), key
    before = json.loads((source / "config.json").read_text())
    after = json.loads((tmp_path / "official" / "config.json").read_text())
    assert after["model_type"] == "sa2va_chat" and after.get("template") == before.get("template")
    if "llm_config" in before:
        assert after["llm_config"]["architectures"] == before["llm_config"]["architectures"]
    assert (tmp_path / "official" / SAM2_SIDE_FILE).exists()
    # the exported folder reloads without any override thanks to the side file
    again = Sa2VAModel.from_pretrained(tmp_path / "official")
    assert torch.equal(again.sam2.no_memory_embedding, model.sam2.no_memory_embedding)


def test_without_the_sam2_override_the_error_names_key_shapes_and_the_fix(official_dirs):
    with pytest.raises(Sa2VACheckpointError, match="sam2_config") as info:
        Sa2VAModel.from_pretrained(official_dirs["qwen2_5_vl"])
    message = str(info.value)
    # the first SAM2 tensor: hiera-L expects width 144, the tiny checkpoint has 16
    assert "grounding_encoder.sam2_model.image_encoder.trunk" in message
    assert "(1, 16, 7, 7)" in message and "(1, 144, 7, 7)" in message


def test_truncated_shard_is_a_clear_error(official_dirs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(official_dirs["internvl"], broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    shard = broken / sorted(set(index["weight_map"].values()))[-1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(Sa2VACheckpointError, match="truncated"):
        Sa2VAModel.from_pretrained(broken, sam2_config=tiny_sam2_params())


def _rewrite(folder, edit):
    """Apply `edit(dict)` to all tensors and rewrite the checkpoint as one file."""
    tensors = read_all(folder)
    edit(tensors)
    for path in folder.glob("model*.safetensors*"):
        path.unlink()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_missing_and_leftover_tensors_are_named(official_dirs, tmp_path):
    missing = tmp_path / "missing"
    shutil.copytree(official_dirs["qwen3_vl"], missing)
    _rewrite(missing, lambda t: t.pop("text_hidden_fcs.2.bias"))
    with pytest.raises(Sa2VACheckpointError, match=r"missing.*text_hidden_fcs\.2\.bias"):
        Sa2VAModel.from_pretrained(missing, sam2_config=tiny_sam2_params())
    extra = tmp_path / "extra"
    shutil.copytree(official_dirs["qwen3_vl"], extra)
    _rewrite(extra, lambda t: t.__setitem__("surprise.weight", torch.zeros(2)))
    with pytest.raises(Sa2VACheckpointError, match=r"no parameter uses.*surprise\.weight"):
        Sa2VAModel.from_pretrained(extra, sam2_config=tiny_sam2_params())


def test_shape_mismatch_names_the_key_and_both_shapes(official_dirs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(official_dirs["internvl"], bad)
    _rewrite(bad, lambda t: t.__setitem__("text_hidden_fcs.2.bias", torch.zeros(255)))
    with pytest.raises(Sa2VACheckpointError, match=r"text_hidden_fcs\.2\.bias.*\(255,\).*\(256,\)") as info:
        Sa2VAModel.from_pretrained(bad, sam2_config=tiny_sam2_params())
    assert "sam2_config" not in str(info.value)  # the SAM2 hint is only for SAM2 tensors


def test_pickle_needs_an_explicit_opt_in(official_dirs, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(official_dirs["qwen2_5_vl"], pickled)
    tensors = read_all(pickled)
    for path in pickled.glob("model*.safetensors*"):
        path.unlink()
    torch.save(tensors, pickled / "pytorch_model.bin")
    with pytest.raises(Sa2VACheckpointError, match="allow_pickle"):
        Sa2VAModel.from_pretrained(pickled, sam2_config=tiny_sam2_params())
    model = Sa2VAModel.from_pretrained(pickled, sam2_config=tiny_sam2_params(), allow_pickle=True)
    assert torch.equal(model.text_hidden_fcs[2].bias, tensors["text_hidden_fcs.2.bias"])


def test_dtype_is_applied_while_loading(official_dirs):
    model = Sa2VAModel.from_pretrained(official_dirs["internvl"], sam2_config=tiny_sam2_params(), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    default = Sa2VAModel.from_pretrained(official_dirs["internvl"], sam2_config=tiny_sam2_params())
    assert {p.dtype for p in default.parameters()} == {torch.float32}


def test_offline_hub_id_says_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Sa2VACheckpointError, match="local-dir") as info:
        Sa2VAModel.from_pretrained("Sa2VA-4B")
    assert "ByteDance/Sa2VA-4B" in str(info.value)
    with pytest.raises(Sa2VACheckpointError, match="neither a checkpoint folder"):
        Sa2VAModel.from_pretrained("./no/such/folder")


def test_cli_convert_both_ways(official_dirs, tmp_path, capsys):
    native, official = tmp_path / "n", tmp_path / "o"
    sam2 = [f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}" for k, v in tiny_sam2_params().items()]
    sam2 = [item.replace(" ", "") for item in sam2]
    assert cli_main(["convert", str(official_dirs["qwen3_vl"]), str(native), "--to", "native", "--sam2", *sam2]) == 0
    assert (native / "config.json").exists()
    assert cli_main(["convert", str(native), str(official), "--to", "official"]) == 0
    original, exported = read_all(official_dirs["qwen3_vl"]), read_all(official)
    assert all(torch.equal(original[k], exported[k]) for k in original)
    assert cli_main(["convert", str(native), str(official), "--to", "official"]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


def test_failed_export_leaves_nothing_behind(official_dirs, tmp_path, monkeypatch):
    model = Sa2VAModel.from_pretrained(official_dirs["qwen3_vl"], sam2_config=tiny_sam2_params())
    import sa2va.checkpoints.convert as convert

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(convert, "official_config_from_native", explode)
    with pytest.raises(RuntimeError):
        export_official(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_side_file_is_plain_json(official_dirs, tmp_path):
    model = Sa2VAModel.from_pretrained(official_dirs["qwen3_vl"], sam2_config=tiny_sam2_params())
    export_official(model, tmp_path / "o")
    side = json.loads((tmp_path / "o" / SAM2_SIDE_FILE).read_text())
    assert side["vision_config"]["backbone_config"]["embed_dim_per_stage"] == [16, 32, 64, 128]
    with safe_open(str(tmp_path / "o" / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_remote_code_tokenizer_class_is_not_run(official_dirs, tmp_path, image):
    """InternLM2 checkpoints name a remote tokenizer class; its files are read by transformers' own classes."""
    folder = tmp_path / "internlm2"
    shutil.copytree(official_dirs["internvl_internlm2"], folder)
    config_path = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "InternLM2Tokenizer"
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]}
    config_path.write_text(json.dumps(tokenizer_config))
    (folder / "tokenization_internlm2.py").write_text("raise SystemExit('remote code must never run')\n")
    model = Sa2VAModel.from_pretrained(folder, sam2_config=tiny_sam2_params())
    assert model.processor.tokenizer.encode("hi")[0] == model.processor.tokenizer.bos_token_id
    with teacher_forcing(model, "Sure, it is [SEG]."):
        assert len(model.predict(image=image, text=SEGMENT).masks) == 1


def test_sam2_config_object_and_bad_dict(official_dirs):
    from sa2va import Sa2VAConfigError
    from sa2va.testing_parts import tiny_sam2_config

    model = Sa2VAModel.from_pretrained(official_dirs["qwen3_vl"], sam2_config=tiny_sam2_config(256))
    assert model.config.sam2_image_size == 256
    with pytest.raises(Sa2VAConfigError, match="unknown SAM2 parameter"):
        Sa2VAModel.from_pretrained(official_dirs["qwen3_vl"], sam2_config={"embed_dimension": 16})
