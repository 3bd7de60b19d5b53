"""Grounded conversation generation (GCG) on GranD-f `val` / `test` (REFERENCE_SPEC §4, §8.4).

One item per image of the split's caption ground truth; the model gets the exact GCG prompt; a prediction record
holds the cleaned caption, the `<p>…</p>` phrases and one COCO RLE per `[SEG]` mask. Metrics:

* `mIoU` (:func:`~sa2va.eval.metrics.gcg_miou`, mean over images) and `recall`
  (:func:`~sa2va.eval.metrics.gcg_recall`, IoU >= 0.5 and phrase similarity >= 0.5), fractions in [0, 1];
* `mask_AP` (:func:`~sa2va.eval.metrics.gcg_mask_ap`) when `pycocotools` is importable, else reported as skipped;
* `captions` (BLEU, METEOR, ROUGE_L, CIDEr, SPICE via `pycocoevalcap`) when it is importable, else skipped.

Phrase similarity is the cosine of text embeddings from a `text_encoder(texts) -> (len(texts), dim)` array. The
reference uses `bert-base-uncased`: the mean of the last hidden states over every token (`[CLS]` and `[SEP]`
included) of each phrase, encoded one at a time — :func:`bert_text_encoder` builds that. The default here,
:func:`bag_of_words_encoder`, is a dependency-free deterministic stand-in (word-count cosine) whose recall is NOT
comparable to published numbers; pass `text_encoder=bert_text_encoder()` (e.g. through
`evaluate(..., benchmark_options={"text_encoder": bert_text_encoder()})`) for paper-comparable recall.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from sa2va.data.coco_masks import segmentation_to_mask
from sa2va.data.records import Sa2VADataError, load_json, read_image
from sa2va.errors import Sa2VAInputError
from sa2va.eval.benchmarks import Benchmark, EvalItem, PathLike, _first_existing
from sa2va.eval.metrics import GCGScore, MissingDependencyError, gcg_mask_ap
from sa2va.grounding.masks import mask_to_rle, rle_to_mask

TextEncoder = Callable[[list[str]], np.ndarray]

# The reference's backslash continuation puts 5 spaces before "segmentation" (§4).
GCG_PROMPT = (
    "<image>\nCould you please give me a brief description of the image? Please respond with interleaved     "
    "segmentation masks for the corresponding parts of the answer."
)
GCG_SPLITS = ("val", "test")

_PHRASE = re.compile(r"<p>(.*?)</p>")
_TAG = re.compile(r"<.*?>")
_WORD = re.compile(r"[a-z0-9]+")


def clean_gcg_text(raw: str) -> tuple[str, list[str]]:
    """`(caption, phrases)` of a generated GCG answer, as the reference (`sa2va_eval_gcg.py`): drop `<s>`, newlines
    and double spaces, keep what follows the last `"ASSISTANT: "`, remove every `<...>` tag and `[SEG]`, collapse
    whitespace and strip `'`; phrases = the stripped `<p>…</p>` contents."""
    text = raw.replace("<s>", "").replace("\n", "").replace("  ", " ")
    text = text.split("ASSISTANT: ")[-1]
    phrases = [p.strip() for p in _PHRASE.findall(text)]
    caption = _TAG.sub("", text).replace("[SEG]", "")
    caption = " ".join(caption.split()).strip("'").strip()
    return caption, phrases


def bag_of_words_encoder(texts: list[str]) -> np.ndarray:
    """Deterministic default text encoder: lower-cased alphanumeric word counts over the vocabulary of `texts`.

    Cosine of two rows = cosine of the two word-count vectors (independent of the other texts). A stand-in for the
    reference's BERT embeddings (see the module docstring); phrases sharing no word have similarity 0.
    """
    tokens = [_WORD.findall(t.lower()) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for ts in tokens for w in ts}))}
    out = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float64)
    for row, words in enumerate(tokens):
        for word in words:
            out[row, vocab[word]] += 1
    return out


def bert_text_encoder(name_or_path: str = "bert-base-uncased", device: str = "cpu") -> TextEncoder:
    """The reference's phrase encoder: each text alone through `AutoModel(name_or_path)`, mean of the last hidden
    states over all its tokens. Loads the model on first use (needs the weights locally or a Hub connection)."""
    state: dict[str, Any] = {}

    def encode(texts: list[str]) -> np.ndarray:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not state:
            state["tokenizer"] = AutoTokenizer.from_pretrained(name_or_path)
            state["model"] = AutoModel.from_pretrained(name_or_path).eval().to(device)
        rows = []
        with torch.no_grad():
            for text in texts:
                inputs = state["tokenizer"](text, return_tensors="pt").to(device)
                hidden = state["model"](**inputs).last_hidden_state[0]
                rows.append(hidden.float().mean(0).cpu().numpy())
        return np.stack(rows).astype(np.float64)

    return encode


def similarity_from_encoder(encoder: TextEncoder) -> Callable[[list[str], list[str]], np.ndarray]:
    """`(gt_phrases, pred_phrases) -> (num_gt, num_pred)` cosine similarities; both lists go to `encoder` in one
    call (GT first). A zero embedding has similarity 0 with everything."""

    def similarity(gt: list[str], pred: list[str]) -> np.ndarray:
        embeddings = np.asarray(encoder(list(gt) + list(pred)), dtype=np.float64)
        if embeddings.ndim != 2 or len(embeddings) != len(gt) + len(pred):
            raise Sa2VAInputError(
                f"text_encoder must return a (num_texts, dim) array for {len(gt) + len(pred)} texts, "
                f"got shape {embeddings.shape}."
            )
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        unit = np.divide(embeddings, norms, out=np.zeros_like(embeddings), where=norms > 0)
        return unit[: len(gt)] @ unit[len(gt) :].T

    return similarity


class GCGBenchmark(Benchmark):
    """GranD-f GCG in the reference layout (`data/`): images in `glamm_data/images/grandf/val_test/`, ground truth in
    `glamm_data/annotations/gcg_val_test/{split}_gcg_coco_mask_gt.json` (COCO masks) and
    `{split}_gcg_coco_caption_gt.json` (per image `caption` and `labels`, the GT phrases in mask order)."""

    name = "gcg"
    modality = "image"

    def __init__(self, split: str, data_root: PathLike, text_encoder: TextEncoder | None = None) -> None:
        super().__init__(split, data_root)
        if split not in GCG_SPLITS:
            raise Sa2VAInputError(f"gcg has splits {list(GCG_SPLITS)}, got {split!r}.")
        self.text_encoder = text_encoder
        root = self.data_root
        ann_dirs = [root / "glamm_data" / "annotations" / "gcg_val_test", root / "annotations" / "gcg_val_test",
                    root / "gcg_val_test", root]  # fmt: skip
        self.mask_path = _first_existing(
            [d / f"{split}_gcg_coco_mask_gt.json" for d in ann_dirs], f"{split}_gcg_coco_mask_gt.json", root
        )
        self.caption_path = _first_existing(
            [d / f"{split}_gcg_coco_caption_gt.json" for d in ann_dirs], f"{split}_gcg_coco_caption_gt.json", root
        )
        self.image_root = _first_existing(
            [
                root / "glamm_data" / "images" / "grandf" / "val_test",
                root / "images" / "grandf" / "val_test",
                root / "grandf" / "val_test",
                root / "val_test",
            ],  # fmt: skip
            "the GranD-f image folder grandf/val_test",
            root,
        )
        masks, captions = load_json(self.mask_path), load_json(self.caption_path)
        for path, data in ((self.mask_path, masks), (self.caption_path, captions)):
            if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
                raise Sa2VADataError(f'{path}: expected a COCO object with "images" and "annotations".')
        self._sizes = {
            i["id"]: (int(i["height"]), int(i["width"]))
            for i in masks["images"] + captions["images"]
            if isinstance(i, dict) and "height" in i and "width" in i
        }
        self._gt_masks: dict[Any, list[Any]] = {}
        for ann in masks["annotations"]:
            if isinstance(ann, dict) and "segmentation" in ann:
                self._gt_masks.setdefault(ann.get("image_id"), []).append(ann["segmentation"])
        self._gt_captions: dict[Any, dict[str, Any]] = {}
        for ann in captions["annotations"]:
            if isinstance(ann, dict):
                self._gt_captions.setdefault(ann.get("image_id"), ann)  # the first one, as the reference
        self._items: list[EvalItem] = []
        for image in captions["images"]:
            if not isinstance(image, dict) or "id" not in image:
                raise Sa2VADataError(f'{self.caption_path}: every image needs an "id".')
            if image["id"] not in self._gt_captions:
                raise Sa2VADataError(f"{self.caption_path}: image {image['id']!r} has no caption annotation.")
            file_name = image.get("file_name") or f"{image['id']}.jpg"
            self._items.append(
                EvalItem(
                    key=str(image["id"]), prompt=GCG_PROMPT, info={"image_id": image["id"], "file_name": file_name}
                )
            )
        if not self._items:
            raise Sa2VAInputError(f"{self.caption_path}: no images.")

    def items(self) -> list[EvalItem]:
        return list(self._items)

    def load_input(self, item: EvalItem) -> dict[str, Any]:
        return {"image": read_image(self.image_root / item.info["file_name"], f"{self.caption_path}: {item.key}")}

    def record(self, item: EvalItem, output: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        width, height = inputs["image"].size
        caption, phrases = clean_gcg_text(output.raw_text)
        masks = [np.asarray(m, dtype=bool).reshape(-1, height, width).any(0) for m in output.masks]
        return {**item.info, "key": item.key, "prompt": item.prompt, "text": output.text, "raw_text": output.raw_text,
                "caption": caption, "phrases": phrases,
                "pred_masks": [mask_to_rle(m, compress=True) for m in masks]}  # fmt: skip

    def _gt(self, image_id: Any, shape: tuple[int, int] | None) -> np.ndarray:
        segmentations = self._gt_masks.get(image_id, [])
        size = self._sizes.get(image_id, shape)
        if size is None:
            first = segmentations[0] if segmentations else None
            if isinstance(first, dict) and "size" in first:
                size = tuple(first["size"])
            else:
                raise Sa2VADataError(f"{self.mask_path}: no height/width known for image {image_id!r}.")
        height, width = size
        if not segmentations:
            return np.zeros((0, height, width), dtype=bool)
        return np.stack([segmentation_to_mask(s, height, width) for s in segmentations])

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        encoder = self.text_encoder or bag_of_words_encoder
        similarity = similarity_from_encoder(encoder)
        gcg = GCGScore()
        preds, gts = [], []
        for record in records:
            pred = [rle_to_mask(r) for r in record["pred_masks"]]
            shape = pred[0].shape if pred else None
            gt = self._gt(record["image_id"], shape)
            pred_stack = np.stack(pred) if pred else np.zeros((0, *gt.shape[1:]), dtype=bool)
            labels = [str(x) for x in self._gt_captions[record["image_id"]].get("labels") or []]
            gcg.add(pred_stack, record["phrases"], gt, labels, similarity)
            preds.append(pred_stack)
            gts.append(gt)
        out: dict[str, Any] = {
            "count": gcg.count,
            "mIoU": gcg.miou,
            "recall": gcg.recall,
            "text_similarity": getattr(encoder, "__name__", type(encoder).__name__),
        }
        try:
            out["mask_AP"] = asdict(gcg_mask_ap(preds, gts))
        except MissingDependencyError:
            out["mask_AP"] = {"skipped": "pycocotools is not installed"}
        out["captions"] = self._caption_scores(records)
        return out

    def _caption_scores(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            from pycocoevalcap.eval import COCOEvalCap
            from pycocotools.coco import COCO
        except ImportError:
            return {"skipped": "pycocoevalcap (and pycocotools) not installed; `pip install pycocoevalcap`"}
        images = [{"id": r["image_id"]} for r in records]
        gt_anns = [{"id": k, "image_id": r["image_id"], "caption": str(self._gt_captions[r["image_id"]]["caption"])}
                   for k, r in enumerate(records, start=1)]  # fmt: skip
        dt_anns = [{"id": k, "image_id": r["image_id"], "caption": r["caption"]} for k, r in enumerate(records, 1)]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                coco_gt = COCO()
                coco_gt.dataset = {"images": images, "annotations": gt_anns}
                coco_gt.createIndex()
                coco_dt = COCO()
                coco_dt.dataset = {"images": images, "annotations": dt_anns}
                coco_dt.createIndex()
                evaluator = COCOEvalCap(coco_gt, coco_dt)
                evaluator.params["image_id"] = coco_dt.getImgIds()
                evaluator.evaluate()
        except Exception as exc:  # METEOR / SPICE / the PTB tokenizer need Java
            return {"skipped": f"pycocoevalcap failed: {type(exc).__name__}: {exc}"}
        return {k: float(v) for k, v in evaluator.eval.items()}


__all__ = ["GCG_PROMPT", "GCGBenchmark", "bag_of_words_encoder", "bert_text_encoder", "clean_gcg_text",
           "similarity_from_encoder"]  # fmt: skip
