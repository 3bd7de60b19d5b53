"""The MLLM half: generation keeps only last-layer post-norm states of generated tokens."""

import torch

from sa2va.modeling.mllm import final_norm, record_decoding_states
from sa2va.modeling.sa2va import default_dtype
from sa2va.testing import teacher_forcing

from ..conftest import get_model


def test_generation_never_asks_for_all_hidden_states(family, image, monkeypatch):
    model = get_model(family)
    seen = {}
    original = model.mllm.generate

    def spy(*args, **kwargs):
        config = kwargs["generation_config"]
        seen["output_hidden_states"] = bool(kwargs.get("output_hidden_states") or config.output_hidden_states)
        return original(*args, **kwargs)

    monkeypatch.setattr(model.mllm, "generate", spy)
    with teacher_forcing(model, "Sure, it is [SEG]."):
        out = model.predict(image=image, text="<image>\nPlease segment the cube.")
    assert seen == {"output_hidden_states": False} and len(out.masks) == 1


def test_recorder_keeps_one_row_per_decoding_step_and_removes_its_hook():
    model = get_model("qwen2_5_vl")
    norm = final_norm(model.mllm)
    ids = torch.tensor([[1, 2, 3, 4]])
    with record_decoding_states(model.mllm) as steps, torch.no_grad():
        cache = model.mllm(input_ids=ids, use_cache=True).past_key_values  # the prompt pass: not kept
        model.mllm(input_ids=torch.tensor([[5]]), past_key_values=cache, use_cache=True)
    assert len(steps) == 1 and steps[0].shape == (1, 1, model.config.hidden_size)
    assert not norm._forward_hooks


def test_default_dtype_is_float32_on_cpu():
    assert default_dtype(None) == torch.float32
    if not torch.cuda.is_available():
        assert default_dtype("auto") == torch.float32
