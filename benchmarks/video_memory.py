"""Peak memory of streaming video segmentation: 1,000 vs 50 frames at 1024² with the tiny model (goal ≤ 1.2×).

Writes two mp4 clips of 1024×1024 frames, then in a fresh process per clip runs `predict_video_stream` (teacher-
forced to segment two objects) over the file and consumes every frame's masks, reading that process's peak RSS.

    python benchmarks/video_memory.py [--short 50] [--long 1000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNER = """
import json, sys, time
from sa2va.testing import teacher_forcing, tiny_model
def high_water():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
model = tiny_model("qwen2_5_vl")
start = time.perf_counter()
with teacher_forcing(model, "Sure, [SEG] and [SEG]."):
    stream = model.predict_video_stream(sys.argv[1], "<image>\\nPlease segment the squares.")
frames = sum(1 for _ in stream)
print(json.dumps({"frames": frames, "peak": high_water(), "seconds": time.perf_counter() - start}))
"""


def write_clip(path: Path, num_frames: int, size: int = 1024) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            frame = np.full((size, size, 3), 20, dtype=np.uint8)
            x = (40 + 3 * t) % (size - 200)
            frame[300:500, x : x + 200] = (230, 50, 50)
            frame[600:700, size - x - 150 : size - x] = (50, 200, 60)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=50)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sa2va-video-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for count in (args.short, args.long):
        clip = workdir / f"clip-{count}.mp4"
        if not clip.exists():
            write_clip(clip, count)
        out = subprocess.run([sys.executable, "-c", RUNNER, str(clip)], check=True, capture_output=True, text=True)
        results[count] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[count]
        print(f"{r['frames']:>5} frames at 1024²: peak RSS {r['peak'] / 1e9:.2f} GB, {r['seconds']:.0f} s")
    ratio = results[args.long]["peak"] / results[args.short]["peak"]
    print(f"peak RSS {args.long} / {args.short} frames: {ratio:.2f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
