"""Readers of the training data formats, in one place.

Every reader is a map-style dataset (`len()`, `[i] -> TrainingSample`) that parses its annotation files when built
and decodes images, frames and masks only in `__getitem__`. Item `i` is drawn from `numpy.random.default_rng((seed,
i))`, so it is the same every time; `sample(i, draw)` gives independent re-draws for repeated items (used by
`MixtureDataset`). A malformed record raises `Sa2VADataError` naming the file and the record, unless
`skip_bad_records=True`, which drops it at parse time and counts it in `num_skipped`.

| Reader | Data | Format |
|---|---|---|
| `RefCOCODataset` | RefCOCO / RefCOCO+ / RefCOCOg | REFER `refs(unc|umd).p` + COCO `instances.json` |
| `FinetuneDataset` | the reference's fine-tuning example | `[{"image", "mask", "text"}]` |
| `LLaVADataset` | LLaVA-v1.5 mix665k | `[{"image"?, "conversations"}]` |
| `GCGDataset` | GranDf / OpenPSG / RefCOCOg-GCG / Flickr30k-GCG | GLaMM annotation files |
| `OspreyDataset` | Osprey-724K | `[{"file_name", "annotation", "conversations" | "description"}]` |
| `RefVOSDataset` | ReVOS / MeViS / Ref-YouTube-VOS / Ref-DAVIS17 | `meta_expressions.json` + `mask_dict` + JPEG frames |
| `RefSAVDataset` | Ref-SAV | `Ref-SAV.json` + SA-V mp4 + masklet json |
| `VideoQADataset` | ChatUniVi video chat | `[{"video", "conversations"}]` |
| `UserDataset` | your own data | JSONL, see `docs/data_format.md` |
"""

from __future__ import annotations

from sa2va.data.records import ParseReport, Sa2VADataError
from sa2va.data.safe_pickle import UnsafePickleError, load_pickle
from sa2va.data.sampling import LengthGroupedSampler, MixtureDataset
from sa2va.data.sources_gcg import GCGDataset
from sa2va.data.sources_image import FinetuneDataset, LLaVADataset, RefCOCODataset
from sa2va.data.sources_user import UserDataset
from sa2va.data.sources_video import RefSAVDataset, RefVOSDataset, VideoQADataset
from sa2va.data.sources_vp import OspreyDataset

__all__ = [
    "Sa2VADataError",
    "UnsafePickleError",
    "ParseReport",
    "load_pickle",
    "RefCOCODataset",
    "FinetuneDataset",
    "LLaVADataset",
    "GCGDataset",
    "OspreyDataset",
    "RefVOSDataset",
    "RefSAVDataset",
    "VideoQADataset",
    "UserDataset",
    "MixtureDataset",
    "LengthGroupedSampler",
]
