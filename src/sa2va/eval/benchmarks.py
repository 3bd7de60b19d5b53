"""Evaluation benchmarks: where their files are, what one item asks, and how a split is scored (REFERENCE_SPEC §8).

A benchmark lists its items (deterministic order, unique string keys), loads the model input of one item, turns a
model answer into a JSON prediction record, and scores a complete set of records against the ground truth. Scores
are always computed from the records in item order, so a sharded run scores exactly like a single process.

| Name | Item | Prompt (§5.4) | Metrics |
|---|---|---|---|
| `refcoco`, `refcoco+`, `refcocog` | one referring sentence | `"<image>\\n Please segment {sent} in this image."` | cIoU, gIoU |
| `mevis_u`, `davis17` | (video, expression) | `"<image>\\nPlease segment {exp}."` | J, F, J&F |
| `revos` | (video, expression) | as above | J, F, J&F, A, R per type |
| `refytvos` (`valid`) | (video, expression) | as above | none: predictions + `--submit` for the server |
| `refsav` (`valid`) | (video, expression) | as above | J, F, A, JF for long / short and their mean |
| `gcg` (`val`, `test`) | one GranD-f image | GCG prompt (§4) | mIoU, recall, mask AP, captions (`sa2va.eval.gcg`) |
| `scenes` (`test`) | held-out scenes-world item | per task (`sa2va.eval.scenes`) | cIoU, J&F, QA accuracy, GCG mIoU |
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sa2va.data.coco_masks import rle_mask, segmentation_to_mask
from sa2va.data.records import Sa2VADataError, load_annotation, load_json, read_image
from sa2va.errors import Sa2VAInputError
from sa2va.eval.metrics import (
    ReferringSegmentationScore,
    ReVOSScore,
    VOSScore,
    db_eval_boundary,
    db_eval_iou,
    revos_accuracy,
)
from sa2va.grounding.masks import mask_to_rle, rle_to_mask

PathLike = str | os.PathLike[str]

REFCOCO_PROMPT = "<image>\n Please segment {sent} in this image."
REFVOS_PROMPT = "<image>\nPlease segment {exp}."
REFVOS_QUESTION_PROMPT = "<image>\n {exp} Please respond with a segmentation mask."


@dataclass(frozen=True)
class EvalItem:
    """One model call of a benchmark.

    Attributes:
        key: unique id of the item within the split (the key of its prediction record).
        prompt: the exact user text given to the model.
        info: benchmark-specific fields (paths, ids, expression text) copied into the prediction record.
    """

    key: str
    prompt: str
    info: dict[str, Any] = field(default_factory=dict)


def refvos_prompt(expression: str) -> str:
    """The RefVOS evaluation prompt of `expression` (REFERENCE_SPEC §5.4)."""
    if "?" in expression:
        return REFVOS_QUESTION_PROMPT.format(exp=expression)
    return REFVOS_PROMPT.format(exp=expression)


def _first_existing(candidates: list[Path], what: str, data_root: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = "\n  ".join(str(c) for c in candidates)
    raise Sa2VAInputError(f"data root {data_root}: cannot find {what}; looked for:\n  {tried}")


class Benchmark:
    """Base class of the benchmarks; see the module docstring."""

    name: str = ""
    modality: str = "image"
    has_ground_truth: bool = True

    def __init__(self, split: str, data_root: PathLike) -> None:
        self.split = split
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise Sa2VAInputError(f"data root {self.data_root} is not a directory.")

    def items(self) -> list[EvalItem]:
        """Every item of the split, in a fixed order."""
        raise NotImplementedError

    def load_input(self, item: EvalItem) -> dict[str, Any]:
        """Keyword arguments (`image=` or `video=`) of `model.predict` for `item`."""
        raise NotImplementedError

    def record(self, item: EvalItem, output: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """The JSON prediction record of `item` from the model's :class:`~sa2va.outputs.Sa2VAOutput`."""
        raise NotImplementedError

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Metrics of the split from its records, given in item order."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------------------------
# RefCOCO family
# --------------------------------------------------------------------------------------------------------------------

_REFCOCO_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


def _refer_split_match(split: str, ref_split: str) -> bool:
    """REFER's `getRefIds(split=...)` rule: `test` = every split containing "test"; `testA` matches `testA`,
    `testAB`, ...; other splits match exactly."""
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split and "test" in ref_split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


class RefCOCOBenchmark(Benchmark):
    """RefCOCO / RefCOCO+ / RefCOCOg (REFER format): one item per referring sentence, cIoU and gIoU.

    Layout (the reference's `data/`): `ref_seg/<name>/refs(unc|umd).p` + `ref_seg/<name>/instances.json` and the
    COCO train2014 images under `glamm_data/images/coco2014/train2014/`. `data_root` may also be the `<name>` folder
    itself, with the images in `train2014/` or `images/` next to the annotation files.
    """

    modality = "image"

    def __init__(self, name: str, split: str, data_root: PathLike) -> None:
        super().__init__(split, data_root)
        self.name = name
        root = self.data_root
        folders = [root / "ref_seg" / name, root / name, root]
        split_by = _REFCOCO_SPLIT_BY[name]
        self.refs_path = _first_existing(
            [f / f"refs({split_by}).p" for f in folders], f"the {name} refs pickle refs({split_by}).p", root
        )
        folder = self.refs_path.parent
        self.instances_path = _first_existing([folder / "instances.json"], f"{name} instances.json", root)
        self.image_root = _first_existing(
            [
                root / "glamm_data" / "images" / "coco2014" / "train2014",
                root / "coco2014" / "train2014",
                root / "train2014",
                folder / "train2014",
                folder / "images",
                root / "images",
            ],
            "the COCO train2014 image folder",
            root,
        )
        refs = load_annotation(self.refs_path)
        instances = load_json(self.instances_path)
        if not isinstance(refs, list):
            raise Sa2VADataError(f"{self.refs_path}: expected a pickled list of refs, got {type(refs).__name__}.")
        if not isinstance(instances, dict) or not all(
            isinstance(instances.get(k), list) for k in ("images", "annotations")
        ):
            raise Sa2VADataError(f'{self.instances_path}: expected a COCO object with "images" and "annotations".')
        self._anns = {a.get("id"): a for a in instances["annotations"] if isinstance(a, dict)}
        self._images = {i.get("id"): i for i in instances["images"] if isinstance(i, dict)}
        self._items: list[EvalItem] = []
        splits_seen = set()
        for index, ref in enumerate(refs):
            if not isinstance(ref, dict):
                raise Sa2VADataError(f"{self.refs_path}: ref #{index} is not a dict.")
            splits_seen.add(str(ref.get("split")))
            if not _refer_split_match(split, str(ref.get("split"))):
                continue
            ann = self._anns.get(ref.get("ann_id"))
            if ann is None:
                raise Sa2VADataError(f"{self.refs_path}: ref #{index}: ann_id {ref.get('ann_id')} not in instances.")
            image = self._images.get(ref.get("image_id", ann.get("image_id")))
            if image is None or not isinstance(image.get("file_name"), str):
                raise Sa2VADataError(f"{self.refs_path}: ref #{index}: its image is not in {self.instances_path}.")
            for number, sentence in enumerate(ref.get("sentences") or []):
                text = sentence.get("sent", sentence.get("raw")) if isinstance(sentence, dict) else None
                if not isinstance(text, str):
                    raise Sa2VADataError(f"{self.refs_path}: ref #{index}: sentence {number} has no text.")
                self._items.append(
                    EvalItem(
                        key=f"{ref.get('ref_id', index)}:{number}",
                        prompt=REFCOCO_PROMPT.format(sent=text),
                        info={
                            "ref_id": ref.get("ref_id", index),
                            "ann_id": ann["id"],
                            "image_id": image["id"],
                            "file_name": image["file_name"],
                            "sentence": text,
                        },
                    )
                )
        if not self._items:
            raise Sa2VAInputError(
                f"{self.refs_path}: no refs of split {split!r}; the file has splits {sorted(splits_seen)}."
            )

    def items(self) -> list[EvalItem]:
        return list(self._items)

    def load_input(self, item: EvalItem) -> dict[str, Any]:
        return {"image": read_image(self.image_root / item.info["file_name"], f"{self.refs_path}: {item.key}")}

    def record(self, item: EvalItem, output: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        width, height = inputs["image"].size
        mask = np.zeros((height, width), dtype=bool)
        for predicted in output.masks:  # OR of every returned mask; none -> all zeros (§8.2)
            mask |= np.asarray(predicted, dtype=bool).reshape(-1, height, width).any(0)
        return {**item.info, "key": item.key, "prompt": item.prompt, "text": output.text,
                "raw_text": output.raw_text, "mask": mask_to_rle(mask, compress=True)}  # fmt: skip

    def _gt(self, record: dict[str, Any], height: int, width: int) -> np.ndarray:
        ann = self._anns[record["ann_id"]]
        return segmentation_to_mask(ann["segmentation"], height, width)

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        score = ReferringSegmentationScore()
        for record in records:
            pred = rle_to_mask(record["mask"])
            score.add(pred, self._gt(record, *pred.shape))
        return {"cIoU": 100 * score.ciou, "gIoU": 100 * score.giou, "count": score.count}


# --------------------------------------------------------------------------------------------------------------------
# Referring video object segmentation
# --------------------------------------------------------------------------------------------------------------------

# benchmark -> split -> (folder candidates relative to data_root, meta file names, mask file names, frame folder)
_REFVOS_LAYOUT: dict[str, dict[str, Any]] = {
    # MeViS `valid` (the server split, no ground truth here) and `valid_u` (the local split with masks) share a
    # layout; `mevis` names the server split so the two are never confused in a report.
    "mevis": {
        "splits": {"valid": "valid"},
        "folders": ["video_datas/mevis/{split}", "mevis/{split}", "{split}", "."],
        "meta": ["meta_expressions.json"],
        "masks": ["mask_dict.json"],
        "frames": ["JPEGImages"],
        "sequential": False,
    },
    "mevis_u": {
        "splits": {"valid_u": "valid_u", "valid": "valid"},
        "folders": ["video_datas/mevis/{split}", "mevis/{split}", "{split}", "."],
        "meta": ["meta_expressions.json"],
        "masks": ["mask_dict.json"],
        "frames": ["JPEGImages"],
        "sequential": False,
    },
    "davis17": {
        "splits": {"valid": "valid"},
        "folders": ["video_datas/davis17", "davis17", "."],
        "meta": [
            "meta_expressions/{split}/meta_expressions.json",
            "{split}/meta_expressions.json",
            "meta_expressions.json",
        ],  # fmt: skip
        "masks": ["{split}/mask_dict.pkl", "mask_dict.pkl", "{split}/mask_dict.json", "mask_dict.json"],
        "frames": ["{split}/JPEGImages", "JPEGImages"],
        "sequential": True,
    },
    "refytvos": {
        "splits": {"valid": "valid"},
        "folders": ["video_datas/rvos", "rvos", "ref-youtube-vos", "."],
        "meta": [
            "meta_expressions/{split}/meta_expressions.json",
            "{split}/meta_expressions.json",
            "meta_expressions.json",
        ],  # fmt: skip
        "masks": [],
        "frames": ["{split}/JPEGImages", "JPEGImages"],
        "sequential": False,
    },
    "refsav": {
        "splits": {"valid": "valid"},
        "folders": ["ref_sav_eval", "."],
        "meta": ["meta_expressions_{split}.json", "meta_expressions.json"],
        "masks": ["mask_dict.json"],
        "frames": ["videos", "JPEGImages"],
        "sequential": False,
    },
    "revos": {
        "splits": {"valid": "valid"},
        "folders": ["video_datas/revos", "revos", "."],
        "meta": ["meta_expressions_{split}_.json", "meta_expressions_{split}.json", "meta_expressions.json"],
        "masks": ["mask_dict.json"],
        "frames": ["JPEGImages", "."],
        "sequential": False,
    },
}


# (benchmark, split) pairs without public masks: predictions only, scored by the challenge server (`--submit`).
_NO_GROUND_TRUTH = {("mevis", "valid"), ("mevis_u", "valid"), ("refytvos", "valid")}

NO_GROUND_TRUTH_NOTE = (
    "no ground truth is available for this split; write the Annotations PNGs and submission.zip with --submit "
    "and submit them to the benchmark's evaluation server."
)


def _union(entries: list[Any], height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for entry in entries:
        for rle in entry if isinstance(entry, list) else [entry]:
            if rle is not None:
                mask |= rle_mask(rle, height, width)
    return mask


class RefVOSBenchmark(Benchmark):
    """MeViS (valid_u), Ref-DAVIS17 and ReVOS in the `meta_expressions.json` + `mask_dict` + JPEG-frames layout.

    One item per (video, expression); every frame (sorted names, `.jpg`) is given to the model; only the first
    `[SEG]` mask is kept (none -> all zeros). GT of an expression = union of its `anno_id` masks (DAVIS: one sequential
    id per expression of the file). ReVOS also reads `mask_dict_foreground.json` for R and reports per `type_id`.
    MeViS `valid` and Ref-YouTube-VOS `valid` have no masks: predictions only (use `--submit`). Ref-SAV reports J, F, A
    per `type_id` (long / short).
    """

    modality = "video"

    def __init__(self, name: str, split: str, data_root: PathLike) -> None:
        super().__init__(split, data_root)
        self.name = name
        layout = _REFVOS_LAYOUT[name]
        if split not in layout["splits"]:
            raise Sa2VAInputError(f"{name} has splits {sorted(layout['splits'])}, got {split!r}.")
        sub = layout["splits"][split]
        root = self.data_root

        def paths(names: list[str], base: Path) -> list[Path]:
            return [base / n.format(split=sub) for n in names]

        folders = [root / f.format(split=sub) for f in layout["folders"]]
        meta_candidates = [p for f in folders for p in paths(layout["meta"], f)]
        self.meta_path = _first_existing(meta_candidates, f"{name} {split} meta_expressions", root)
        base = next(f for f in folders if any(p == self.meta_path for p in paths(layout["meta"], f)))
        mask_paths = paths(layout["masks"], base)
        self.mask_path = next((p for p in mask_paths if p.is_file()), None)
        self.has_ground_truth = self.mask_path is not None
        if not self.has_ground_truth and (name, split) not in _NO_GROUND_TRUTH:
            _first_existing(mask_paths, f"the {name} {split} mask file", root)
        self.frame_root = _first_existing(paths(layout["frames"], base), f"the {name} {split} JPEG frame folder", root)
        meta = load_json(self.meta_path)
        if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
            raise Sa2VADataError(f'{self.meta_path}: expected {{"videos": {{video: {{"frames", "expressions"}}}}}}.')
        self._masks = load_annotation(self.mask_path) if self.mask_path else {}
        self._foreground: dict[str, Any] = {}
        if name == "revos":
            self._foreground = load_annotation(
                _first_existing([base / "mask_dict_foreground.json"], "ReVOS mask_dict_foreground.json", root)
            )
        self._items = []
        counter = 0
        for video, info in meta["videos"].items():
            frames = info.get("frames") if isinstance(info, dict) else None
            expressions = info.get("expressions") if isinstance(info, dict) else None
            if not isinstance(frames, list) or not frames or not isinstance(expressions, dict):
                raise Sa2VADataError(f'{self.meta_path}: video {video!r} needs "frames" and "expressions".')
            for exp_id in sorted(expressions):
                exp = expressions[exp_id]
                if not isinstance(exp, dict) or not isinstance(exp.get("exp"), str):
                    raise Sa2VADataError(f'{self.meta_path}: video {video!r}, expression {exp_id!r} needs "exp".')
                if layout["sequential"]:
                    anno_ids = [str(counter)]
                else:
                    ids = exp.get("anno_id", [])
                    anno_ids = [str(a) for a in (ids if isinstance(ids, list) else [ids])]
                counter += 1
                if self.has_ground_truth:
                    for anno_id in anno_ids:
                        entries = self._masks.get(anno_id)
                        if not isinstance(entries, list) or len(entries) != len(frames):
                            raise Sa2VADataError(
                                f"{self.mask_path}: annotation {anno_id} of video {video!r}, expression {exp_id!r} "
                                f"is missing or does not have one entry per frame ({len(frames)})."
                            )
                self._items.append(
                    EvalItem(
                        key=f"{video}/{exp_id}",
                        prompt=refvos_prompt(exp["exp"]),
                        info={
                            "video_id": video,
                            "exp_id": str(exp_id),
                            "exp": exp["exp"],
                            "frames": sorted(frames),
                            "anno_id": anno_ids,
                            "type_id": int(exp.get("type_id", 0)),
                        },  # fmt: skip
                    )
                )

    def items(self) -> list[EvalItem]:
        return list(self._items)

    def load_input(self, item: EvalItem) -> dict[str, Any]:
        video = item.info["video_id"]
        where = f"{self.meta_path}: video {video!r}"
        frames = [read_image(self.frame_root / video / f"{name}.jpg", where) for name in item.info["frames"]]
        return {"video": frames}

    def record(self, item: EvalItem, output: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        frames: list[Image.Image] = inputs["video"]
        width, height = frames[0].size
        if output.masks:  # only the first [SEG] (§8.3)
            masks = np.asarray(output.masks[0], dtype=bool).reshape(len(frames), height, width)
        else:
            masks = np.zeros((len(frames), height, width), dtype=bool)
        return {**item.info, "key": item.key, "prompt": item.prompt, "text": output.text, "raw_text": output.raw_text,
                "masks": [mask_to_rle(m, compress=True) for m in masks]}  # fmt: skip

    def ground_truth(self, record: dict[str, Any], height: int, width: int) -> np.ndarray:
        """`(num_frames, H, W)` GT of a record: union of its annotations per frame."""
        anno = record["anno_id"]
        return np.stack(
            [_union([self._masks[a][f] for a in anno], height, width) for f in range(len(record["frames"]))]
        )

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.has_ground_truth:
            return {"count": len(records), "ground_truth": False, "note": NO_GROUND_TRUTH_NOTE}
        if self.name == "revos":
            revos = ReVOSScore()
            for record in records:
                pred = np.stack([rle_to_mask(m) for m in record["masks"]])
                _, height, width = pred.shape
                gt = self.ground_truth(record, height, width)
                fg_entries = self._foreground.get(record["video_id"])
                if isinstance(fg_entries, dict):  # {"masks": [...]} variant
                    fg_entries = fg_entries.get("masks")
                if not isinstance(fg_entries, list) or len(fg_entries) != len(record["frames"]):
                    raise Sa2VADataError(f"mask_dict_foreground.json has no per-frame masks of {record['video_id']!r}.")
                foreground = np.stack([_union([e], height, width) for e in fg_entries])
                revos.add(gt, pred, foreground, record["type_id"])
            result = revos.result()
            out: dict[str, Any] = {"count": revos.count}
            for group in ("referring", "reasoning", "overall"):
                g = getattr(result, group)
                out[group] = {"J": g.j, "F": g.f, "J&F": g.jf, "A": g.a, "R": g.r, "count": g.count}
            return out
        if self.name == "refsav":
            return self._score_refsav(records)
        vos = VOSScore()
        for record in records:
            pred = np.stack([rle_to_mask(m) for m in record["masks"]])
            _, height, width = pred.shape
            vos.add(self.ground_truth(record, height, width), pred)
        return {"J": vos.j, "F": vos.f, "J&F": vos.jf, "count": vos.count}

    def _score_refsav(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Ref-SAV (`tools/eval/eval_ref_sav.py`): per expression the frame means of J, F and A; per `type_id`
        (0 = "long", 1 = "short") the mean over its expressions ×100, JF = (J+F)/2; "overall" = mean of the two
        groups (NaN -> null when a group is empty, as the reference's mean of an empty array)."""
        groups: dict[str, list[tuple[float, float, float]]] = {"long": [], "short": []}
        for record in records:
            pred = np.stack([rle_to_mask(m) for m in record["masks"]])
            _, height, width = pred.shape
            gt = self.ground_truth(record, height, width)
            scores = (float(db_eval_iou(gt, pred).mean()), float(db_eval_boundary(gt, pred).mean()),
                      float(revos_accuracy(gt, pred).mean()))  # fmt: skip
            if record["type_id"] == 0:
                groups["long"].append(scores)
            elif record["type_id"] == 1:
                groups["short"].append(scores)
        out: dict[str, Any] = {"count": len(records)}
        for group, values in groups.items():
            if values:
                j, f, a = (100 * math.fsum(v[i] for v in values) / len(values) for i in range(3))
            else:
                j = f = a = math.nan
            out[group] = {"J": j, "F": f, "A": a, "JF": (j + f) / 2, "count": len(values)}
        out["overall"] = {k: (out["long"][k] + out["short"][k]) / 2 for k in ("J", "F", "A", "JF")}
        return out


BENCHMARKS = (
    "refcoco", "refcoco+", "refcocog", "mevis", "mevis_u", "davis17", "revos", "refytvos", "refsav", "gcg", "scenes"
)


def load_benchmark(name: str, split: str, data_root: PathLike, **options: Any) -> Benchmark:
    """The benchmark `name` on `split` under `data_root`.

    Args:
        options: benchmark-specific keyword arguments; `gcg` takes `text_encoder` (see :mod:`sa2va.eval.gcg`).

    Raises:
        Sa2VAInputError: unknown benchmark or split, a data root without the expected files, or options the
            benchmark does not take.
    """
    if name == "gcg":
        from sa2va.eval.gcg import GCGBenchmark  # gcg.py builds on this module

        unknown = set(options) - {"text_encoder"}
        if unknown:
            raise Sa2VAInputError(f"gcg takes the option text_encoder only, got {sorted(unknown)}.")
        return GCGBenchmark(split, data_root, **options)
    if name == "scenes":
        from sa2va.eval.scenes import ScenesBenchmark  # scenes.py builds on this module

        return ScenesBenchmark(split, data_root, **options)
    if options:
        raise Sa2VAInputError(f"{name} takes no benchmark options, got {sorted(options)}.")
    if name in _REFCOCO_SPLIT_BY:
        return RefCOCOBenchmark(name, split, data_root)
    if name in _REFVOS_LAYOUT:
        return RefVOSBenchmark(name, split, data_root)
    raise Sa2VAInputError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}.")


def finite(value: Any) -> Any:
    """JSON-safe copy of a metrics value (NaN -> None)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
