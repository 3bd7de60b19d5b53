"""End-to-end tests of the benchmark runner on tiny datasets written in the real public layouts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa2va.cli import main
from sa2va.errors import Sa2VAInputError
from sa2va.eval.benchmarks import load_benchmark, refvos_prompt
from sa2va.eval.runner import evaluate, merge_shards, read_records, write_submission
from sa2va.testing import teacher_forcing, tiny_model
from tests.data.fixtures import SQUARE, frame_mask, rle, write_image, write_jpeg_frames, write_json, write_pickle

ANSWER = "Sure, it is [SEG]."
W, H = 32, 24


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2_5_vl")


class Counting:
    """Wraps a model and counts `predict` calls."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def predict(self, **kwargs):
        self.calls += 1
        return self.model.predict(**kwargs)


def write_refcoco(root: Path) -> Path:
    """`ref_seg/refcoco/refs(unc).p` + `instances.json` + `glamm_data/images/coco2014/train2014/`: 2 val images × 2
    sentences, plus one testA ref."""
    images_dir = root / "glamm_data" / "images" / "coco2014" / "train2014"
    images, anns, refs = [], [], []
    for k in range(3):
        name = f"COCO_train2014_{k:012d}.jpg"
        write_image(images_dir / name, W, H, value=60 + 40 * k)
        images.append({"id": k + 1, "file_name": name, "height": H, "width": W})
        anns.append({"id": 10 + k, "image_id": k + 1, "category_id": 1, "segmentation": [SQUARE], "iscrowd": 0})
        refs.append({
            "ref_id": 100 + k, "ann_id": 10 + k, "image_id": k + 1, "split": "val" if k < 2 else "testA",
            "sentences": [{"raw": f"The thing {k}.", "sent": f"the thing {k}"}, {"raw": "left one", "sent": "left one"}],
        })  # fmt: skip
    folder = root / "ref_seg" / "refcoco"
    write_pickle(folder / "refs(unc).p", refs)
    write_json(folder / "instances.json", {"images": images, "annotations": anns, "categories": [{"id": 1}]})
    return root


def write_refvos(root: Path, name: str) -> Path:
    """MeViS valid_u (`mask_dict.json`, anno ids) or DAVIS17 (`mask_dict.pkl`, sequential ids): 1 video × 2
    expressions × 4 frames."""
    frames = [f"{i:05d}" for i in range(4)]
    expressions = {
        "0": {"exp": "the red car", "anno_id": ["7"]},
        "1": {"exp": "what moves first?", "anno_id": ["7", "8"]},
    }
    masks = {
        "7": [rle(frame_mask(i, H, W)) for i in range(4)],
        "8": [rle(frame_mask(i, H, W, offset=10)) if i % 2 else None for i in range(4)],
    }
    meta = {"videos": {"vid_a": {"frames": frames, "expressions": expressions}}}
    if name == "mevis_u":
        base = root / "video_datas" / "mevis" / "valid_u"
        write_json(base / "meta_expressions.json", meta)
        write_json(base / "mask_dict.json", masks)
        write_jpeg_frames(base / "JPEGImages" / "vid_a", frames, W, H)
    else:
        base = root / "video_datas" / "davis17"
        write_json(base / "meta_expressions" / "valid" / "meta_expressions.json", meta)
        write_pickle(base / "valid" / "mask_dict.pkl", {"0": masks["7"], "1": masks["8"]})
        write_jpeg_frames(base / "valid" / "JPEGImages" / "vid_a", frames, W, H)
    return root


def test_refcoco_end_to_end_and_resume(model, tmp_path):
    root = write_refcoco(tmp_path / "data")
    out = tmp_path / "out"
    counting = Counting(model)
    with teacher_forcing(model, ANSWER):
        metrics = evaluate(counting, "refcoco", "val", root, out, progress=False)
    assert counting.calls == 4  # 2 images × 2 sentences, testA ref left out
    assert metrics["split"] == "val" and metrics["count"] == 4
    assert {"cIoU", "gIoU"} <= set(metrics) and 0 <= metrics["cIoU"] <= 100
    for name in ("predictions.json", "metrics.json", "report.md"):
        assert (out / name).is_file()
    assert not list(out.glob("*.tmp"))
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["split"] == "val" and len(predictions["predictions"]) == 4
    first = predictions["predictions"]["100:0"]
    assert first["prompt"] == "<image>\n Please segment the thing 0 in this image."
    assert first["mask"]["size"] == [H, W] and isinstance(first["mask"]["counts"], str)
    assert "`val`" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text()) == metrics

    # Resume: an interrupted run (2 of 4 records, a torn last line) only predicts the missing items.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    lines = (out / "predictions.shard-0-of-1.jsonl").read_text().splitlines()
    (resumed / "predictions.shard-0-of-1.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    counting = Counting(model)
    with teacher_forcing(model, ANSWER):
        again = evaluate(counting, "refcoco", "val", root, resumed, progress=False)
    assert counting.calls == 2
    assert again == metrics
    counting = Counting(model)
    assert evaluate(counting, "refcoco", "val", root, resumed, progress=False) == metrics
    assert counting.calls == 0

    with pytest.raises(Sa2VAInputError, match="refcoco / val"):
        evaluate(counting, "refcoco", "testA", root, resumed, progress=False)


def test_refcoco_sharded_equals_single(model, tmp_path):
    root = write_refcoco(tmp_path / "data")
    with teacher_forcing(model, ANSWER):
        single = evaluate(model, "refcoco", "val", root, tmp_path / "single", progress=False)
        other = evaluate(model, "refcoco", "val", root, tmp_path / "sharded", shard=(1, 2), progress=False)
        assert other["merged"] is False and other["predicted"] == 2
        merged = evaluate(model, "refcoco", "val", root, tmp_path / "sharded", shard=(0, 2), progress=False)
    assert merged == single
    assert merge_shards("refcoco", "val", root, tmp_path / "sharded") == single
    single_pred = json.loads((tmp_path / "single" / "predictions.json").read_text())
    merged_pred = json.loads((tmp_path / "sharded" / "predictions.json").read_text())
    assert list(single_pred["predictions"]) == list(merged_pred["predictions"])


def test_shard_zero_times_out_without_other_shards(model, tmp_path):
    root = write_refcoco(tmp_path / "data")
    with teacher_forcing(model, ANSWER), pytest.raises(Sa2VAInputError, match="did a shard fail"):
        evaluate(model, "refcoco", "val", root, tmp_path / "out", shard=(0, 2), progress=False,
                 barrier_timeout=0.0, poll_seconds=0.0)  # fmt: skip


@pytest.mark.parametrize("name", ["mevis_u", "davis17"])
def test_refvos_end_to_end(model, tmp_path, name):
    root = write_refvos(tmp_path / "data", name)
    split = "valid_u" if name == "mevis_u" else "valid"
    out = tmp_path / "out"
    counting = Counting(model)
    with teacher_forcing(model, ANSWER):
        metrics = evaluate(counting, name, split, root, out, progress=False)
    assert counting.calls == 2
    assert {"J", "F", "J&F"} <= set(metrics) and metrics["split"] == split and metrics["count"] == 2
    records = read_records(out)
    assert set(records) == {"vid_a/0", "vid_a/1"}
    assert records["vid_a/1"]["prompt"] == "<image>\n what moves first? Please respond with a segmentation mask."
    assert len(records["vid_a/0"]["masks"]) == 4
    if name == "mevis_u":
        zip_path = write_submission(out)
        png = out / "Annotations" / "vid_a" / "0" / "00003.png"
        assert png.is_file() and Image.open(png).size == (W, H)
        assert set(np.unique(np.asarray(Image.open(png)))) <= {0, 255}
        with zipfile.ZipFile(zip_path) as archive:
            assert "Annotations/vid_a/1/00000.png" in archive.namelist()


def test_refvos_ground_truth_unions_annotations(tmp_path):
    root = write_refvos(tmp_path / "data", "davis17")
    bench = load_benchmark("davis17", "valid", root)
    second = bench.items()[1]
    gt = bench.ground_truth({"anno_id": second.info["anno_id"], "frames": second.info["frames"]}, H, W)
    assert gt.shape == (4, H, W) and gt[1].sum() == frame_mask(1, H, W, offset=10).sum() and gt[0].sum() == 0
    assert refvos_prompt("the car.") == "<image>\nPlease segment the car.."


def test_wrong_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(Sa2VAInputError, match="refs\\(unc\\).p"):
        load_benchmark("refcoco", "val", tmp_path)
    with pytest.raises(Sa2VAInputError, match="not a directory"):
        load_benchmark("refcoco", "val", tmp_path / "missing")
    with pytest.raises(Sa2VAInputError, match="unknown benchmark"):
        load_benchmark("coco", "val", tmp_path)
    with pytest.raises(Sa2VAInputError, match="no refs of split"):
        load_benchmark("refcoco", "testB", write_refcoco(tmp_path / "data"))


def test_cli_eval_refcoco(model, tmp_path, capsys):
    root = write_refcoco(tmp_path / "data")
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    out = tmp_path / "out"
    code = main(["eval", "--model", str(checkpoint), "--benchmark", "refcoco", "--split", "val",
                 "--data-root", str(root), "--out", str(out)])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"cIoU", "gIoU"} <= set(metrics) and metrics["split"] == "val"
    assert (out / "predictions.json").is_file() and (out / "report.md").is_file()
    assert "refcoco val" in capsys.readouterr().out
    # without --model the embedded sa2va-tiny is evaluated
    default = tmp_path / "out_default"
    assert main(["eval", "--benchmark", "refcoco", "--split", "val", "--data-root", str(root), "--out", str(default)]) == 0
    assert json.loads((default / "metrics.json").read_text())["count"] == metrics["count"]


def test_revos_end_to_end(model, tmp_path):
    base = tmp_path / "data" / "video_datas" / "revos"
    frames = [f"{i:05d}" for i in range(4)]
    expressions = {
        "0": {"exp": "the red car", "anno_id": [3], "type_id": 0},
        "1": {"exp": "which object moves first?", "anno_id": [3], "type_id": 1},
    }
    write_json(
        base / "meta_expressions_valid_.json", {"videos": {"vid_a": {"frames": frames, "expressions": expressions}}}
    )
    write_json(base / "mask_dict.json", {"3": [rle(frame_mask(i, H, W)) for i in range(4)]})
    write_json(base / "mask_dict_foreground.json", {"vid_a": [rle(frame_mask(i, H, W, offset=2)) for i in range(4)]})
    write_jpeg_frames(base / "vid_a", frames, W, H)
    with teacher_forcing(model, ANSWER):
        metrics = evaluate(model, "revos", "valid", tmp_path / "data", tmp_path / "out", progress=False)
    assert metrics["split"] == "valid" and metrics["count"] == 2
    for group in ("referring", "reasoning", "overall"):
        assert {"J", "F", "J&F", "A", "R"} <= set(metrics[group])
    assert metrics["referring"]["count"] == 1 and metrics["reasoning"]["count"] == 1


@pytest.mark.parametrize(("benchmark", "refs_file"), [("refcoco+", "refs(unc).p"), ("refcocog", "refs(umd).p")])
def test_refcoco_plus_and_g_end_to_end(model, tmp_path, benchmark, refs_file):
    root = write_refcoco(tmp_path / "data")
    source, target = root / "ref_seg" / "refcoco", root / "ref_seg" / benchmark
    target.mkdir(parents=True)
    (target / refs_file).write_bytes((source / "refs(unc).p").read_bytes())
    (target / "instances.json").write_bytes((source / "instances.json").read_bytes())
    with teacher_forcing(model, "Sure, it is [SEG]."):
        metrics = evaluate(model, benchmark, "val", root, tmp_path / "out", progress=False)
    assert metrics["benchmark"] == benchmark and metrics["split"] == "val" and metrics["count"] == 4
    assert 0 <= metrics["cIoU"] <= 100 and 0 <= metrics["gIoU"] <= 100


def test_mevis_server_split_writes_predictions_and_a_submission(model, tmp_path):
    root = tmp_path / "data"
    frames = [f"{i:05d}" for i in range(3)]
    meta = {"videos": {"vid_m": {"frames": frames, "expressions": {"0": {"exp": "the red car"}}}}}
    base = root / "video_datas" / "mevis" / "valid"
    write_json(base / "meta_expressions.json", meta)
    write_jpeg_frames(base / "JPEGImages" / "vid_m", frames, W, H)
    with teacher_forcing(model, "Sure, it is [SEG]."):
        metrics = evaluate(model, "mevis", "valid", root, tmp_path / "out", progress=False)
    assert metrics["benchmark"] == "mevis" and metrics["split"] == "valid" and metrics["ground_truth"] is False
    assert (write_submission(tmp_path / "out")).exists()
    assert (tmp_path / "out" / "Annotations" / "vid_m" / "0" / "00002.png").is_file()
    assert "valid" in (tmp_path / "out" / "report.md").read_text()
