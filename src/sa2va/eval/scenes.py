"""The `scenes` benchmark: held-out scenes of the scenes world (`sa2va.data.scenes`), the embedded model's test.

    sa2va eval --benchmark scenes --split test --data-root data/scenes_test --out runs/eval_scenes

The data root holds `test.jsonl` as written by `sa2va.data.scenes_dataset.write_scenes(root, "test")`; an empty or
missing folder is filled with the default 30 image and 20 video scenes (seeds from `TEST_FIRST_SEED`, never used in
training). Metrics:

| Task | Items | Metric |
|---|---|---|
| image referring segmentation | 2 expressions per image scene | cIoU (and gIoU), per expression kind too |
| video referring segmentation | 2 expressions per video scene | J, F, J&F (DAVIS rules) |
| questions | colour, shape, count, position, motion | accuracy (answer text equal after lowercasing and stripping punctuation) |
| grounded captions | one per image scene | mIoU (greedy matching, as GCG) and caption accuracy |
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sa2va.data.scenes import IMAGE_SIZE
from sa2va.data.sources_user import decode_mask_spec
from sa2va.errors import Sa2VAInputError
from sa2va.eval.benchmarks import Benchmark, EvalItem, PathLike
from sa2va.eval.metrics import ReferringSegmentationScore, VOSScore, gcg_miou
from sa2va.grounding.gcg import parse_grounded_text
from sa2va.grounding.masks import mask_to_rle, rle_to_mask

_WORDS = re.compile(r"[a-z0-9]+")


def normalise_answer(text: str) -> str:
    """Lowercase words joined by single spaces: `"Red."` → `"red"`."""
    return " ".join(_WORDS.findall(text.lower()))


def _decode_masks(spec: dict, height: int, width: int) -> np.ndarray:
    """A user-format mask entry → `(T, H, W)` bool (`T = 1` for images; `null` video frames are empty)."""
    if "frames" in spec:
        empty = np.zeros((height, width), bool)
        return np.stack([decode_mask_spec(f, height, width).astype(bool) if f else empty for f in spec["frames"]])
    return decode_mask_spec(spec, height, width).astype(bool)[None]


class ScenesBenchmark(Benchmark):
    """Referring segmentation (images and videos), questions and grounded captions on held-out scenes."""

    name = "scenes"
    modality = "mixed"

    def __init__(self, split: str, data_root: PathLike, num_images: int = 30, num_videos: int = 20) -> None:
        if split != "test":
            raise Sa2VAInputError(f"scenes has the split 'test' only, got {split!r}.")
        root = Path(data_root)
        if not (root / "test.jsonl").is_file():
            if root.exists() and any(root.iterdir()):
                raise Sa2VAInputError(f"{root} has no test.jsonl; give an empty folder to generate the held-out scenes.")
            from sa2va.data.scenes_dataset import write_scenes

            write_scenes(root, "test", num_images=num_images, num_videos=num_videos)
        super().__init__(split, root)
        lines = (root / "test.jsonl").read_text(encoding="utf-8").splitlines()
        self._rows = [json.loads(line) for line in lines if line.strip()]

    def items(self) -> list[EvalItem]:
        out = []
        for n, row in enumerate(self._rows):
            info = {"row": n, "task": row["task"], "kind": row["kind"], "source": row.get("image") or row["video"]}
            out.append(EvalItem(key=f"{n:05d}", prompt="<image>\n" + row["conversation"][0]["user"], info=info))
        return out

    def load_input(self, item: EvalItem) -> dict[str, Any]:
        row = self._rows[item.info["row"]]
        if "image" in row:
            with Image.open(self.data_root / row["image"]) as image:
                return {"image": image.convert("RGB")}
        frames = sorted((self.data_root / row["video"]).glob("*.png"))
        return {"video": [Image.open(f).convert("RGB") for f in frames]}

    def record(self, item: EvalItem, output: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        masks = [np.asarray(m, dtype=bool) for m in output.masks]
        masks = [m if m.ndim == 3 else m[None] for m in masks]  # (T, H, W) each
        encoded = [[mask_to_rle(frame, compress=True) for frame in m] for m in masks]
        return {**item.info, "key": item.key, "prompt": item.prompt, "text": output.text, "raw_text": output.raw_text,
                "masks": encoded}  # fmt: skip

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        image_refer, video_refer = ReferringSegmentationScore(), VOSScore()
        by_kind: dict[str, ReferringSegmentationScore] = {}
        qa_correct: dict[str, list[bool]] = {}
        gcg_mious, gcg_exact = [], []
        for record in records:
            row = self._rows[record["row"]]
            predicted = [np.stack([rle_to_mask(f).astype(bool) for f in m]) for m in record["masks"]]
            size = predicted[0].shape[-2:] if predicted else (IMAGE_SIZE, IMAGE_SIZE)
            truth = [_decode_masks(spec, *size) for spec in row["masks"]]
            if row["task"] == "refer":
                gt = truth[0]
                pred = np.zeros_like(gt)
                for m in predicted:  # OR of every returned mask; none -> empty (as the RefCOCO benchmarks)
                    pred |= m
                if "video" in row:
                    video_refer.add(gt, pred)
                else:
                    image_refer.add(pred[0], gt[0])
                    by_kind.setdefault(row["kind"], ReferringSegmentationScore()).add(pred[0], gt[0])
            elif row["task"] == "qa":
                expected = normalise_answer(row["conversation"][0]["assistant"])
                qa_correct.setdefault(row["kind"], []).append(normalise_answer(record["text"]) == expected)
            else:
                gcg_mious.append(gcg_miou([m[0] for m in predicted], [t[0] for t in truth]) if predicted else 0.0)
                expected = normalise_answer(parse_grounded_text(row["conversation"][0]["assistant"])[0])
                gcg_exact.append(normalise_answer(record["text"]) == expected)
        answers = [c for values in qa_correct.values() for c in values]

        def mean(values: list) -> float:
            return 100 * math.fsum(values) / len(values) if values else math.nan

        return {
            "image_cIoU": 100 * image_refer.ciou if image_refer.count else math.nan,
            "image_gIoU": 100 * image_refer.giou if image_refer.count else math.nan,
            "image_cIoU_by_kind": {k: 100 * s.ciou for k, s in sorted(by_kind.items())},
            "video_J": video_refer.j if video_refer.count else math.nan,
            "video_F": video_refer.f if video_refer.count else math.nan,
            "video_JF": video_refer.jf if video_refer.count else math.nan,
            "qa_accuracy": mean(answers),
            "qa_accuracy_by_kind": {k: mean(v) for k, v in sorted(qa_correct.items())},
            "gcg_mIoU": mean(gcg_mious),
            "gcg_caption_accuracy": mean(gcg_exact),
            "count": {"image_refer": image_refer.count, "video_refer": video_refer.count, "qa": len(answers),
                      "gcg": len(gcg_mious)},  # fmt: skip
        }


__all__ = ["ScenesBenchmark", "normalise_answer"]
