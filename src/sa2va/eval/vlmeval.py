"""A model wrapper for VLMEvalKit's chat benchmarks (MME, MMBench, Video-MME, ...).

VLMEvalKit calls `model.generate(message, dataset=None)` with `message` a list of `{"type": "image" | "text",
"value": path_or_text}` items. As the reference's VLMEvalKit fork does (REFERENCE_SPEC §8.5), several images are
given to the model as a video (so the MLLM sees the first key frames), one image as an image, and the answer is
returned without the template's end tokens. Registration in a VLMEvalKit checkout (`vlmeval/config.py`):

    from functools import partial
    from sa2va.eval.vlmeval import Sa2VAForVLMEvalKit
    supported_VLM["Sa2VA-4B"] = partial(Sa2VAForVLMEvalKit, model_path="/data/Sa2VA-4B")
"""

from __future__ import annotations

from PIL import Image

from sa2va.errors import Sa2VAInputError

END_TOKENS = ("<|im_end|>", "<|end|>", "<|endoftext|>")


class Sa2VAForVLMEvalKit:
    """VLMEvalKit-compatible chat model over a `Sa2VAModel`.

    Args:
        model_path: checkpoint folder, released name or Hub id (ignored when `model` is given).
        model: an already loaded `Sa2VAModel`.
        load_kwargs: extra `Sa2VAModel.from_pretrained` arguments (`dtype`, `device_map`, ...).
    """

    INSTALL_REQ = False
    INTERLEAVE = False

    def __init__(self, model_path: str | None = None, model=None, **load_kwargs):
        if model is None:
            if model_path is None:
                raise Sa2VAInputError("give model_path (a checkpoint) or model (a loaded Sa2VAModel).")
            from sa2va.modeling.sa2va import Sa2VAModel

            model = Sa2VAModel.from_pretrained(model_path, **load_kwargs)
        self.model = model.eval()

    def generate(self, message: list[dict] | str, dataset: str | None = None) -> str:
        """Answer one VLMEvalKit message; returns the text without end tokens."""
        if isinstance(message, str):
            message = [{"type": "text", "value": message}]
        images = [item["value"] for item in message if item.get("type") == "image"]
        text = "\n".join(str(item["value"]) for item in message if item.get("type") == "text").strip()
        if not text:
            raise Sa2VAInputError("the VLMEvalKit message has no text item.")
        frames = [_load(image) for image in images]
        if len(frames) > 1:
            output = self.model.predict(video=frames, text=f"<image>\n{text}")
        elif frames:
            output = self.model.predict(image=frames[0], text=f"<image>\n{text}")
        else:
            output = self.model.predict(text=text)
        answer = output.raw_text
        for token in END_TOKENS:
            answer = answer.replace(token, "")
        return answer.strip()

    __call__ = generate


def _load(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        with Image.open(image) as opened:
            return opened.convert("RGB")
    except OSError as error:
        raise Sa2VAInputError(f"cannot read image {image!r}: {error}") from error


__all__ = ["Sa2VAForVLMEvalKit"]
