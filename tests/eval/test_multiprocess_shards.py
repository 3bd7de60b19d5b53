"""Two concurrent CPU processes, each one shard of a refcoco run, give exactly the metrics of a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sa2va.testing import tiny_model
from tests.eval.test_runner import write_refcoco

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from sa2va.eval.runner import evaluate
from sa2va.modeling.sa2va import Sa2VAModel
model_dir, data_root, out, index, count = sys.argv[1:6]
model = Sa2VAModel.from_pretrained(model_dir).eval()
shard = None if int(count) == 0 else (int(index), int(count))
metrics = evaluate(model, "refcoco", "val", data_root, out, shard=shard, progress=False, poll_seconds=0.2,
                   barrier_timeout=300)
print("METRICS=" + json.dumps(metrics))
"""


def _start(*args: object) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _metrics(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-4000:]
    line = next(x for x in stdout.splitlines() if x.startswith("METRICS="))
    return json.loads(line[len("METRICS=") :])


def test_two_processes_equal_single_process(tmp_path):
    root = write_refcoco(tmp_path / "data")
    model_dir = tmp_path / "model"
    tiny_model("qwen2_5_vl").save_pretrained(model_dir)
    # Shard 0 (which waits and merges) and shard 1 run concurrently, next to a single-process run.
    shard0 = _start(model_dir, root, tmp_path / "sharded", 0, 2)
    shard1 = _start(model_dir, root, tmp_path / "sharded", 1, 2)
    single = _start(model_dir, root, tmp_path / "single", 0, 0)
    other, merged, alone = _metrics(shard1), _metrics(shard0), _metrics(single)
    assert other["merged"] is False and other["predicted"] == 2
    assert merged == alone and merged["count"] == 4
    sharded_pred = json.loads((tmp_path / "sharded" / "predictions.json").read_text())["predictions"]
    single_pred = json.loads((tmp_path / "single" / "predictions.json").read_text())["predictions"]
    assert sharded_pred == single_pred
    assert sorted(p.name for p in (tmp_path / "sharded").glob("predictions.shard-*.jsonl")) == [
        "predictions.shard-0-of-2.jsonl",
        "predictions.shard-1-of-2.jsonl",
    ]
