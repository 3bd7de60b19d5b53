"""Video segmentation, 3 objects × 32 frames: one batched pass with shared features vs a reference-style loop.

The reference tracks every `[SEG]` in its own SAM2 state and re-encodes frames as it goes: each key frame is encoded
when the language prompt is added and again when its memory is encoded before propagation (its feature cache holds
one frame), and every other frame once per object. sa2va encodes each frame once and tracks all objects as one batch.
Both paths run the same tracker code here; only the work pattern differs. Prints the time ratio (goal ≥ 3×).

    python benchmarks/video_batched.py [--frames 32] [--objects 3] [--size 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from sa2va.testing import tiny_model
from sa2va.video import propagation
from sa2va.video.propagation import Sa2VATracker


class ReferenceStyleTracker(Sa2VATracker):
    """One object per tracker, and each key frame encoded a second time for its memory, as the reference does."""

    def _key_frame(self, t: int):
        propagation.encode_frame(self.sam2, self.load_frame(t))  # the reference's second encoding of a key frame
        return super()._key_frame(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="SAM2 input size of the tiny model")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = tiny_model("qwen2_5_vl", sam2_image_size=args.size)
    frames = torch.randn(args.frames, 1, 3, args.size, args.size)
    prompts = torch.randn(args.objects, 256)
    keys = list(range(min(5, args.frames)))

    def batched() -> None:
        for _ in Sa2VATracker(model.sam2, args.frames, lambda t: frames[t], keys, prompts).run():
            pass

    def per_object() -> None:
        for i in range(args.objects):
            tracker = ReferenceStyleTracker(model.sam2, args.frames, lambda t: frames[t], keys, prompts[i : i + 1])
            for _ in tracker.run():
                pass

    timings = {}
    for name, fn in (("batched", batched), ("reference-style loop", per_object)):
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeats):
            fn()
        timings[name] = (time.perf_counter() - start) / args.repeats
    print(f"{args.objects} objects x {args.frames} frames, tiny SAM2 at {args.size} px, {torch.get_num_threads()} threads")
    for name, seconds in timings.items():
        print(f"{name:>22}: {seconds:.2f} s")
    print(f"speed-up: {timings['reference-style loop'] / timings['batched']:.2f}x  (goal >= 3x)")


if __name__ == "__main__":
    main()
