"""Run a model over a benchmark split: resumable, shardable, with atomic result files (REFERENCE_SPEC §8).

`evaluate(model, benchmark, split, data_root, out_dir)` writes into `out_dir`:

* `predictions.shard-<i>-of-<n>.jsonl` — one JSON record per finished item, appended as it goes (resume reads them
  back and skips those items, whatever the shard count of the earlier run);
* `predictions.json` — `{"benchmark", "split", "predictions": {key: record}}` in item order (RLE masks + text);
* `metrics.json` and `report.md` — the scores, with the benchmark and split named.

The three final files are written atomically (temporary file, then rename). With a shard (explicit `shard=(i, n)`,
or `RANK` / `WORLD_SIZE` of a `torchrun` launch) items are split round-robin; shard 0 waits until every item has a
record in the shard files (a file barrier) and then merges. Metrics are always computed from the merged records in
item order, so a sharded run gives exactly the metrics of a single process.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sa2va.errors import Sa2VAInputError
from sa2va.eval.benchmarks import Benchmark, EvalItem, PathLike, finite, load_benchmark
from sa2va.grounding.masks import rle_to_mask, save_mask_png

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions.json"
METRICS = "metrics.json"
REPORT = "report.md"
RUN_INFO = "run.json"


def write_atomic(path: PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """`(index, count)`: the explicit shard, else `RANK` / `WORLD_SIZE` from the environment, else `(0, 1)`.

    Raises:
        Sa2VAInputError: an index outside `[0, count)`.
    """
    if shard is None:
        shard = (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    index, count = int(shard[0]), int(shard[1])
    if count < 1 or not 0 <= index < count:
        raise Sa2VAInputError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}.")
    return index, count


def shard_items(items: list[EvalItem], index: int, count: int) -> list[EvalItem]:
    """Round-robin share of shard `index` out of `count`."""
    return items[index::count]


def read_records(out_dir: PathLike) -> dict[str, dict[str, Any]]:
    """Every finished record in `out_dir`: the shard jsonl files (a truncated last line is ignored), then
    `predictions.json`."""
    out_dir = Path(out_dir)
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("predictions.shard-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # an interrupted write
                if isinstance(record, dict) and "key" in record:
                    records[record["key"]] = record
    final = out_dir / PREDICTIONS
    if final.is_file():
        try:
            saved = json.loads(final.read_text(encoding="utf-8")).get("predictions", {})
        except (json.JSONDecodeError, AttributeError):
            saved = {}
        for key, record in saved.items():
            records.setdefault(key, record)
    return records


def _check_run_info(out_dir: Path, benchmark: Benchmark) -> None:
    info = {"benchmark": benchmark.name, "split": benchmark.split}
    path = out_dir / RUN_INFO
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in info} != info:
            raise Sa2VAInputError(
                f"{out_dir} holds a run of {old.get('benchmark')} / {old.get('split')}, not "
                f"{benchmark.name} / {benchmark.split}; use another --out folder."
            )
        return
    try:
        with open(path, "x", encoding="utf-8") as handle:  # several shards may race here
            json.dump(info, handle)
    except FileExistsError:
        pass


def predict_items(
    model: Any, benchmark: Benchmark, items: Iterable[EvalItem], jsonl: Path, *, progress: bool = True, desc: str = ""
) -> int:
    """Run the model on `items`, appending each record to `jsonl` as soon as it is done; returns the count."""
    items = list(items)
    done = 0
    if jsonl.is_file() and jsonl.stat().st_size:
        with open(jsonl, "rb") as handle:  # end a line torn by an interrupted run before appending
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        if torn:
            with open(jsonl, "a", encoding="utf-8") as handle:
                handle.write("\n")
    with open(jsonl, "a", encoding="utf-8") as handle:
        for item in tqdm(items, desc=desc, disable=not progress or not items):
            inputs = benchmark.load_input(item)
            output = model.predict(text=item.prompt, **inputs)
            handle.write(json.dumps(benchmark.record(item, output, inputs)) + "\n")
            handle.flush()
            done += 1
    return done


def _wait_for_records(out_dir: Path, keys: list[str], timeout: float, poll: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(out_dir)
        missing = [k for k in keys if k not in records]
        if not missing:
            return records
        if time.monotonic() > deadline:
            raise Sa2VAInputError(
                f"{out_dir}: {len(missing)} item(s) still have no prediction after {timeout:.0f} s "
                f"(first: {missing[0]!r}); did a shard fail? Re-run it: finished items are kept."
            )
        time.sleep(poll)


def format_report(benchmark: Benchmark, metrics: dict[str, Any], model_name: str = "") -> str:
    """Markdown report of a finished run."""
    lines = [f"# {benchmark.name} — split `{benchmark.split}`", ""]
    if model_name:
        lines += [f"Model: `{model_name}`", ""]
    lines += ["| metric | value |", "|---|---|"]

    def rows(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                rows(f"{prefix}{key} / " if isinstance(sub, dict) else f"{prefix}{key}", sub)
        elif isinstance(value, float):
            lines.append(f"| {prefix} | {value:.2f} |")
        else:
            lines.append(f"| {prefix} | {value} |")

    rows("", metrics)
    return "\n".join(lines) + "\n"


def finalize(
    benchmark: Benchmark, records: dict[str, dict[str, Any]], out_dir: PathLike, model_name: str = ""
) -> dict[str, Any]:
    """Score the complete records and write `predictions.json`, `metrics.json` and `report.md` atomically."""
    out_dir = Path(out_dir)
    ordered = [records[item.key] for item in benchmark.items()]
    metrics = finite(benchmark.score(ordered))
    metrics = {"benchmark": benchmark.name, "split": benchmark.split, **metrics}
    predictions = {"benchmark": benchmark.name, "split": benchmark.split, "predictions": {r["key"]: r for r in ordered}}
    write_atomic(out_dir / PREDICTIONS, json.dumps(predictions))
    write_atomic(out_dir / METRICS, json.dumps(metrics, indent=2))
    write_atomic(out_dir / REPORT, format_report(benchmark, metrics, model_name))
    return metrics


def evaluate(
    model: Any,
    benchmark: str,
    split: str,
    data_root: PathLike,
    out_dir: PathLike,
    shard: tuple[int, int] | None = None,
    *,
    progress: bool = True,
    barrier_timeout: float = 24 * 3600.0,
    poll_seconds: float = 2.0,
    benchmark_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on one benchmark split (see the module docstring).

    Args:
        model: anything with `predict(image=... | video=..., text=...) -> Sa2VAOutput` (a :class:`Sa2VAModel`).
        benchmark: one of :data:`sa2va.eval.benchmarks.BENCHMARKS`.
        split: e.g. `val`, `testA`, `test` (RefCOCO family), `valid_u` (MeViS), `valid` (DAVIS17, ReVOS,
            Ref-YouTube-VOS, Ref-SAV), `val` / `test` (GCG).
        data_root: the reference's `data/` folder (or the dataset folder itself).
        out_dir: results folder (created); a folder with earlier results of the same split resumes.
        shard: `(index, count)`; default from `RANK` / `WORLD_SIZE`, else a single process.
        progress: show a tqdm bar.
        barrier_timeout: how long shard 0 waits for the other shards, in seconds.
        poll_seconds: how often shard 0 looks at the shard files while waiting.
        benchmark_options: keyword arguments of the benchmark (`gcg`: `text_encoder`, see :mod:`sa2va.eval.gcg`).

    Returns:
        The metrics (shard 0 or a single process), or `{"shard": i, "count": n, "merged": False, ...}` for other
        shards.

    Raises:
        Sa2VAInputError: unknown benchmark/split, a data root without the expected files, an out folder holding
            another benchmark's results, or missing shard results after `barrier_timeout`.
    """
    bench = load_benchmark(benchmark, split, data_root, **(benchmark_options or {}))
    index, count = resolve_shard(shard)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_run_info(out, bench)
    items = bench.items()
    done = read_records(out)
    todo = [item for item in shard_items(items, index, count) if item.key not in done]
    jsonl = out / f"predictions.shard-{index}-of-{count}.jsonl"
    skipped = len(shard_items(items, index, count)) - len(todo)
    if skipped:
        logger.info("%s %s: %d item(s) already done, skipped", bench.name, split, skipped)
    ran = predict_items(model, bench, todo, jsonl, progress=progress, desc=f"{bench.name}/{split} [{index}/{count}]")
    if index != 0:
        return {"benchmark": bench.name, "split": split, "shard": index, "count": count, "merged": False,
                "predicted": ran, "skipped": skipped}  # fmt: skip
    timeout = barrier_timeout if count > 1 else 0.0  # a single process has nobody to wait for
    records = _wait_for_records(out, [item.key for item in items], timeout, poll_seconds)
    name = getattr(getattr(model, "config", None), "name_or_path", "") or ""
    return finalize(bench, records, out, model_name=str(name))


def merge_shards(
    benchmark: str, split: str, data_root: PathLike, out_dir: PathLike, benchmark_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Merge the shard files of a finished sharded run and write the final files (no model needed).

    Raises:
        Sa2VAInputError: some item has no prediction yet.
    """
    bench = load_benchmark(benchmark, split, data_root, **(benchmark_options or {}))
    records = _wait_for_records(Path(out_dir), [item.key for item in bench.items()], 0.0, 0.0)
    return finalize(bench, records, out_dir)


def write_submission(out_dir: PathLike) -> Path:
    """MeViS / Ref-YouTube-VOS server submission from a finished video run's `predictions.json`.

    Writes `Annotations/<video_id>/<exp_id>/<frame>.png` (mask ×255, mode `L`) and `submission.zip` holding the
    `Annotations` folder; returns the zip path.

    Raises:
        Sa2VAInputError: no `predictions.json`, or it is not a video benchmark's.
    """
    out = Path(out_dir)
    path = out / PREDICTIONS
    if not path.is_file():
        raise Sa2VAInputError(f"{path} does not exist; run the evaluation first.")
    predictions = json.loads(path.read_text(encoding="utf-8"))["predictions"]
    annotations = out / "Annotations"
    files = []
    for record in predictions.values():
        if "masks" not in record or "video_id" not in record:
            raise Sa2VAInputError(f"{path} is not a video benchmark's predictions; --submit needs mevis / refytvos.")
        folder = annotations / record["video_id"] / record["exp_id"]
        folder.mkdir(parents=True, exist_ok=True)
        for frame, rle in zip(record["frames"], record["masks"], strict=True):
            target = folder / f"{frame}.png"
            save_mask_png(np.asarray(rle_to_mask(rle)), target)
            files.append(target)
    zip_path = out / "submission.zip"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".submission.", suffix=".zip.tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for target in files:
            archive.write(target, target.relative_to(out).as_posix())
    os.replace(tmp, zip_path)
    return zip_path


__all__ = ["evaluate", "merge_shards", "write_submission", "read_records", "resolve_shard", "shard_items",
           "write_atomic", "format_report"]  # fmt: skip
