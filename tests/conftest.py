import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sa2va.testing import FAMILIES, tiny_model  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

_MODELS: dict[str, object] = {}


def get_model(family: str):
    """One tiny model per family for the whole session (building is cheap, but predictions are compared)."""
    if family not in _MODELS:
        _MODELS[family] = tiny_model(family, seed=0)
    return _MODELS[family]


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def model(family):
    return get_model(family)


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.RandomState(0)
    return Image.fromarray((rng.rand(96, 128, 3) * 255).astype(np.uint8))


@pytest.fixture
def square_image() -> Image.Image:
    rng = np.random.RandomState(1)
    return Image.fromarray((rng.rand(448, 448, 3) * 255).astype(np.uint8))
