"""GCG, Ref-YouTube-VOS and Ref-SAV benchmarks end to end on tiny datasets in the real layouts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.eval.benchmarks import NO_GROUND_TRUTH_NOTE, load_benchmark
from sa2va.eval.gcg import (
    GCG_PROMPT,
    GCGBenchmark,
    bag_of_words_encoder,
    bert_text_encoder,
    clean_gcg_text,
    similarity_from_encoder,
)
from sa2va.eval.runner import evaluate, read_records, write_submission
from sa2va.testing import teacher_forcing, tiny_model
from tests.data.fixtures import SQUARE, frame_mask, rle, square_mask, write_image, write_jpeg_frames, write_json

W, H = 32, 24
GCG_ANSWER = "A <p> red ball </p> [SEG] lies on <p> the grass </p> [SEG]."
SEG_ANSWER = "Sure, it is [SEG]."


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2_5_vl")


def write_gcg(root: Path, split: str = "val") -> Path:
    """`glamm_data/images/grandf/val_test/<id>.jpg` + `glamm_data/annotations/gcg_val_test/{split}_gcg_coco_*_gt.json`:
    2 images, 2 GT masks each (a polygon and an RLE)."""
    images, mask_anns, cap_anns = [], [], []
    for k, image_id in enumerate(["sa_1001", "sa_1002"]):
        write_image(root / "glamm_data" / "images" / "grandf" / "val_test" / f"{image_id}.jpg", W, H, value=70 + 50 * k)
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": H, "width": W})
        mask_anns.append({"id": 2 * k + 1, "image_id": image_id, "category_id": 1, "segmentation": [SQUARE],
                          "iscrowd": 0})  # fmt: skip
        mask_anns.append({"id": 2 * k + 2, "image_id": image_id, "category_id": 1,
                          "segmentation": rle(square_mask(H, W, 20, 2, 6)), "iscrowd": 0})  # fmt: skip
        cap_anns.append({"id": k + 1, "image_id": image_id, "caption": "A red ball lies on the grass.",
                         "labels": ["a red ball", "the grass"]})  # fmt: skip
    folder = root / "glamm_data" / "annotations" / "gcg_val_test"
    write_json(folder / f"{split}_gcg_coco_mask_gt.json",
               {"images": images, "annotations": mask_anns, "categories": [{"id": 1}]})  # fmt: skip
    write_json(folder / f"{split}_gcg_coco_caption_gt.json", {"images": images, "annotations": cap_anns})
    return root


def test_gcg_prompt_and_cleaning():
    assert GCG_PROMPT == (
        "<image>\nCould you please give me a brief description of the image? Please respond with interleaved"
        "     segmentation masks for the corresponding parts of the answer."
    )
    # newlines are removed, not replaced by a space, as in the reference
    caption, phrases = clean_gcg_text("<s>ASSISTANT: A <p> red  ball </p> [SEG] on\n<p>grass</p> [SEG].<|im_end|>")
    assert caption == "A red ball ongrass ." and phrases == ["red ball", "grass"]


def test_bag_of_words_similarity():
    sims = similarity_from_encoder(bag_of_words_encoder)(["a red ball", "the grass"], ["red ball", "sky", ""])
    assert sims.shape == (2, 3)
    assert sims[0, 0] == pytest.approx(2 / np.sqrt(6)) and sims[1, 1] == 0 and sims[0, 2] == 0
    assert similarity_from_encoder(bag_of_words_encoder)(["The Grass"], ["grass the"])[0, 0] == pytest.approx(1.0)


def test_gcg_end_to_end(model, tmp_path):
    root = write_gcg(tmp_path / "data")
    with teacher_forcing(model, GCG_ANSWER):
        metrics = evaluate(model, "gcg", "val", root, tmp_path / "out", progress=False)
    assert metrics["benchmark"] == "gcg" and metrics["split"] == "val" and metrics["count"] == 2
    assert 0 <= metrics["mIoU"] <= 1 and 0 <= metrics["recall"] <= 1
    assert metrics["text_similarity"] == "bag_of_words_encoder"
    assert 0 <= metrics["mask_AP"]["ap50"] <= 1 or metrics["mask_AP"]["ap50"] == -1
    assert "captions" in metrics
    record = read_records(tmp_path / "out")["sa_1001"]
    assert record["prompt"] == GCG_PROMPT
    assert record["caption"] == "A red ball lies on the grass ." and record["phrases"] == ["red ball", "the grass"]
    assert len(record["pred_masks"]) == 2 and record["pred_masks"][0]["size"] == [H, W]


def test_gcg_scores_perfect_predictions_and_custom_encoder(tmp_path):
    root = write_gcg(tmp_path / "data", split="test")
    calls = []

    def encoder(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.ones((len(texts), 3))  # every phrase is similar

    bench = load_benchmark("gcg", "test", root, text_encoder=encoder)
    assert isinstance(bench, GCGBenchmark) and [i.key for i in bench.items()] == ["sa_1001", "sa_1002"]
    gt = bench._gt("sa_1001", None)
    records = [{"image_id": i.info["image_id"], "phrases": ["x", "y"], "caption": "c",
                "pred_masks": [rle(m) for m in gt]} for i in bench.items()]  # fmt: skip
    metrics = bench.score(records)
    assert metrics["mIoU"] == 1.0 and metrics["recall"] == 1.0 and metrics["mask_AP"]["ap50"] == pytest.approx(1.0)
    assert calls and calls[0] == ["a red ball", "the grass", "x", "y"]
    with pytest.raises(Sa2VAInputError, match="splits"):
        load_benchmark("gcg", "train", root)
    with pytest.raises(Sa2VAInputError, match="no benchmark options"):
        load_benchmark("refcoco", "val", root, text_encoder=encoder)


def test_refytvos_predictions_and_submission(model, tmp_path):
    base = tmp_path / "data" / "video_datas" / "rvos"
    frames = [f"{i:05d}" for i in range(3)]
    expressions = {"0": {"exp": "a dog running"}, "1": {"exp": "the left person"}}
    write_json(base / "meta_expressions" / "valid" / "meta_expressions.json",
               {"videos": {"vid_y": {"frames": frames, "expressions": expressions}}})  # fmt: skip
    write_jpeg_frames(base / "valid" / "JPEGImages" / "vid_y", frames, W, H)
    out = tmp_path / "out"
    with teacher_forcing(model, SEG_ANSWER):
        metrics = evaluate(model, "refytvos", "valid", tmp_path / "data", out, progress=False)
    assert metrics["count"] == 2 and metrics["ground_truth"] is False and metrics["note"] == NO_GROUND_TRUTH_NOTE
    assert "submit" in json.loads((out / "metrics.json").read_text())["note"]
    zip_path = write_submission(out)
    png = out / "Annotations" / "vid_y" / "1" / "00002.png"
    assert png.is_file() and Image.open(png).size == (W, H)
    with zipfile.ZipFile(zip_path) as archive:
        assert "Annotations/vid_y/0/00000.png" in archive.namelist()


def write_refsav(root: Path) -> None:
    """`ref_sav_eval/`: 1 video × 3 frames, one long (type 0) and one short (type 1) expression of object 1."""
    base = root / "ref_sav_eval"
    frames = [f"{i:05d}" for i in range(3)]
    expressions = {"0": {"exp": "the long description of a cat", "anno_id": [1], "type_id": 0},
                   "1": {"exp": "cat", "anno_id": [1], "type_id": 1}}  # fmt: skip
    write_json(base / "meta_expressions_valid.json",
               {"videos": {"sav_1": {"frames": frames, "expressions": expressions}}})  # fmt: skip
    write_json(base / "mask_dict.json", {"1": [rle(frame_mask(i, H, W)) for i in range(3)]})
    write_jpeg_frames(base / "videos" / "sav_1", frames, W, H)


def test_refsav_scores_long_and_short(tmp_path):
    write_refsav(tmp_path / "data")
    bench = load_benchmark("refsav", "valid", tmp_path / "data")
    items = bench.items()
    perfect = {**items[0].info, "masks": [rle(frame_mask(i, H, W)) for i in range(3)]}
    empty = {**items[1].info, "masks": [rle(np.zeros((H, W), bool)) for _ in range(3)]}
    metrics = bench.score([perfect, empty])
    assert metrics["long"]["J"] == 100 and metrics["long"]["F"] == 100 and metrics["long"]["A"] == 100
    assert metrics["short"]["J"] == 0 and metrics["short"]["count"] == 1
    assert metrics["overall"]["J"] == 50 and metrics["overall"]["JF"] == pytest.approx(50)
    expected_a = 100 * np.mean([1 - frame_mask(i, H, W).sum() / (H * W) for i in range(3)])
    assert metrics["short"]["A"] == pytest.approx(expected_a)


def test_bert_text_encoder_mean_pools_last_hidden_states(tmp_path):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "ball", "the", "grass"]))
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=9, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16)).eval()  # fmt: skip
    tokenizer.save_pretrained(tmp_path / "bert")
    bert.save_pretrained(tmp_path / "bert")
    embeddings = bert_text_encoder(str(tmp_path / "bert"))(["Red ball", "the grass"])
    assert embeddings.shape == (2, 8)
    with torch.no_grad():
        expected = bert(**tokenizer("Red ball", return_tensors="pt")).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(embeddings[0], expected, rtol=1e-5, atol=1e-6)


def test_refsav_end_to_end(model, tmp_path):
    write_refsav(tmp_path / "data")
    out = tmp_path / "out"
    with teacher_forcing(model, SEG_ANSWER):
        metrics = evaluate(model, "refsav", "valid", tmp_path / "data", out, progress=False)
    assert metrics["split"] == "valid" and metrics["count"] == 2
    for group in ("long", "short", "overall"):
        assert 0 <= metrics[group]["J"] <= 100 and 0 <= metrics[group]["A"] <= 100
    records = read_records(out)
    assert len(records) == 2 and all(len(r["masks"]) == 3 for r in records.values())
