"""The `scenes` benchmark scores what it should: perfect answers give 100, wrong ones less, per task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from sa2va.cli import main
from sa2va.eval.benchmarks import load_benchmark
from sa2va.eval.scenes import _decode_masks, normalise_answer
from sa2va.grounding.gcg import parse_grounded_text


@dataclass
class Answer:
    text: str
    raw_text: str = ""
    masks: list = field(default_factory=list)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return load_benchmark("scenes", "test", tmp_path_factory.mktemp("scenes") / "data", num_images=4, num_videos=2)


def _perfect(bench, item):
    row = bench._rows[item.info["row"]]
    masks = [m if "video" in row else m[0] for m in (_decode_masks(spec, 128, 128) for spec in row["masks"])]
    text, _ = parse_grounded_text(row["conversation"][0]["assistant"])
    return Answer(text=text, masks=masks)


def test_perfect_answers_score_100(bench):
    items = bench.items()
    assert {i.info["task"] for i in items} == {"refer", "qa", "gcg"}
    records = [bench.record(item, _perfect(bench, item), bench.load_input(item)) for item in items]
    metrics = bench.score(records)
    for name in ("image_cIoU", "video_JF", "qa_accuracy", "gcg_mIoU", "gcg_caption_accuracy"):
        assert metrics[name] == pytest.approx(100.0), name
    assert metrics["count"] == {"image_refer": 8, "video_refer": 4, "qa": 10, "gcg": 4}


def test_wrong_answers_lower_each_metric(bench):
    records = []
    for item in bench.items():
        answer = _perfect(bench, item)
        if item.info["task"] == "qa":
            answer.text = "Purple." if normalise_answer(answer.text) != "purple" else "Red."
        elif item.info["task"] == "refer":
            answer.masks = [np.roll(m, 6, axis=-1) for m in answer.masks]  # shifted by 6 pixels
        else:
            answer.masks = answer.masks[:1]  # one phrase found out of several: mIoU stays 100 (unmatched GT is free)
        records.append(bench.record(item, answer, bench.load_input(item)))
    metrics = bench.score(records)
    assert metrics["qa_accuracy"] == 0.0
    assert 20 < metrics["image_cIoU"] < 90 and 20 < metrics["video_JF"] < 90
    assert metrics["gcg_mIoU"] == pytest.approx(100.0)


def test_scenes_command_writes_user_format(tmp_path, capsys):
    assert main(["scenes", "--out", str(tmp_path / "s"), "--images", "3", "--videos", "1"]) == 0
    assert "wrote train scenes" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "s" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and "video" in rows[-1]
    assert main(["scenes", "--out", str(tmp_path / "s"), "--images", "4", "--videos", "1"]) == 2  # other scenes
