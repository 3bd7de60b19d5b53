"""sa2va: Sa2VA on transformers-native parts — chat, referring segmentation, grounded captions and visual prompts.

```python
from sa2va import Sa2VAModel
model = Sa2VAModel.from_pretrained("/path/to/checkpoint")
out = model.predict(image=image, text="Please segment the red cube.")
out.masks[0]  # bool (1, H, W)
```
"""

from sa2va.configuration import Sa2VAConfig
from sa2va.errors import Sa2VACheckpointError, Sa2VAConfigError, Sa2VAError, Sa2VAInputError
from sa2va.grounding.gcg import GroundedPhrase
from sa2va.modeling.sa2va import Sa2VAModel
from sa2va.outputs import ChatHistory, Sa2VAOutput
from sa2va.processing.processor import Sa2VAProcessor

__version__ = "0.1.0"

__all__ = [
    "Sa2VAConfig",
    "Sa2VAModel",
    "Sa2VAProcessor",
    "Sa2VAOutput",
    "ChatHistory",
    "GroundedPhrase",
    "Sa2VAError",
    "Sa2VAInputError",
    "Sa2VAConfigError",
    "Sa2VACheckpointError",
]
