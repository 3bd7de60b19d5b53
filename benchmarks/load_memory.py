"""Peak memory of loading an official-layout checkpoint, relative to its size on disk (goal: ≤ 1.3).

Writes a random ~1B-parameter checkpoint in the official Sa2VA layout (Qwen2.5-VL family with a 2048-wide,
16-layer LLM and the real SAM2 hiera-L), then loads it in a fresh process with `Sa2VAModel.from_pretrained` and
reports that process's peak RSS divided by the bytes of the safetensors files.

    python benchmarks/load_memory.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOADER = """
import json, sys, time
import torch
from sa2va import Sa2VAModel
from sa2va.checkpoints.safe_io import CheckpointReader
folder = sys.argv[1]
def high_water():  # VmHWM is per process image (ru_maxrss would include the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
baseline = high_water()
start = time.perf_counter()
model = Sa2VAModel.from_pretrained(folder)
seconds = time.perf_counter() - start
peak = high_water()
params = sum(p.numel() for p in model.parameters())
disk = CheckpointReader(folder).size_on_disk()
print(json.dumps({"params": params, "disk_bytes": disk, "peak_rss_bytes": peak, "baseline_rss_bytes": baseline,
                  "seconds": seconds}))
"""


def write_checkpoint(folder: Path) -> None:
    import torch

    from sa2va.checkpoints.safe_io import write_safetensors
    from sa2va.configuration import sam2_hiera_large_config
    from sa2va.testing_official_mllm import official_mllm_config, official_mllm_state_dict
    from sa2va.testing_official_sam2 import official_sam2_state_dict
    from sa2va.testing_parts import build_processor, build_tokenizer

    official = official_mllm_config("qwen2_5_vl")
    text = official["text_config"]
    text.update(hidden_size=2048, intermediate_size=5504, num_hidden_layers=16, num_attention_heads=16,
                 num_key_value_heads=2)
    text["rope_scaling"] = {**text.get("rope_scaling", {}), "mrope_section": [16, 24, 24], "type": "mrope",
                            "rope_type": "default"}
    if "rope_parameters" in text:
        text["rope_parameters"]["mrope_section"] = [16, 24, 24]
    official["vision_config"]["out_hidden_size"] = 2048
    generator = torch.Generator().manual_seed(0)
    state = official_mllm_state_dict(official, generator=generator)
    state.update(official_sam2_state_dict(sam2_hiera_large_config(), generator=generator))
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(iter(sorted(state.items())), folder, max_shard_bytes=1024**3)
    (folder / "config.json").write_text(json.dumps(official, indent=2))
    tokenizer = build_tokenizer("qwen2_5_vl")
    build_processor("qwen2_5_vl", tokenizer).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the written checkpoint")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sa2va-load-bench-"))
    folder = workdir / "official-1b"
    try:
        if not (folder / "config.json").exists():
            start = time.perf_counter()
            write_checkpoint(folder)
            print(f"wrote checkpoint in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        out = subprocess.run([sys.executable, "-c", LOADER, str(folder)], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = result["peak_rss_bytes"] / result["disk_bytes"]
        print(f"parameters:        {result['params'] / 1e9:.3f} B")
        print(f"size on disk:      {result['disk_bytes'] / 1e9:.2f} GB")
        print(f"peak RSS (loader): {result['peak_rss_bytes'] / 1e9:.2f} GB "
              f"(process baseline before loading {result['baseline_rss_bytes'] / 1e9:.2f} GB)")
        print(f"load time:         {result['seconds']:.1f} s")
        print(f"peak RSS / disk:   {ratio:.2f}  (goal <= 1.3)")
        loading = (result["peak_rss_bytes"] - result["baseline_rss_bytes"]) / result["disk_bytes"]
        print(f"(peak - baseline) / disk: {loading:.2f}  (memory added by loading)")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
