"""Region naming: an auxiliary loss that teaches a vision tower trained from scratch what its masks contain.

Not part of the reference recipe (its vision towers come pretrained). A Qwen-family tower trained from scratch
through the language-model loss alone never learnt to tell a circle from a square (docs/embedded_model.md): the
LLM can only learn to look up a shape once the tower encodes it, and the tower only gets a signal once the LLM looks
it up. Region naming breaks that circle with direct, local supervision taken from the training data itself:

* every `[SEG]` of an answer that is followed by a phrase ("Sure, it is the [SEG] red circle.", or a grounded
  caption's "<p> A [SEG] red circle </p>") pairs that phrase with the `[SEG]`'s mask;
* the MLLM's visual tokens of the image, averaged with the mask's coverage of each token cell as weights, go
  through the LLM's final norm and `lm_head`, and the loss is the cross-entropy of each phrase token.

Only single-image samples take part (one image, one frame of masks); answers without a phrase after `[SEG]`
("Sure, [SEG].") contribute nothing. Qwen families only: their merged visual tokens form one grid over the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sa2va.data.collate import TrainingBatch
from sa2va.modeling.mllm import final_norm

MAX_PHRASE_TOKENS = 4
_PHRASE_ENDS = (".", ",", ";", ":", "!", "?", "<", "\n")


def phrase_stop_ids(tokenizer) -> frozenset[int]:
    """Ids of the tokens that end a phrase: punctuation, markup (`</p>`) and special tokens."""
    stops = set(tokenizer.all_special_ids)
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if not text.strip() or any(mark in text for mark in _PHRASE_ENDS):
            stops.add(token_id)
    return frozenset(stops)


def seg_phrases(
    input_ids: torch.Tensor, labels: torch.Tensor, seg_id: int, stop_ids: frozenset[int]
) -> list[list[int]]:
    """The phrase that follows each answer `[SEG]` of one sample, in order (empty when none follows).

    Args:
        input_ids, labels: `(seq,)` of one sample; only `[SEG]`s inside answers (labels not -100) count, as only
            those have masks.
    """
    ids = input_ids.tolist()
    answer = (labels != -100).tolist()
    phrases = []
    for position, token in enumerate(ids):
        # labels hold the answer tokens themselves (the loss shifts them), so this marks answer positions
        if token != seg_id or not answer[position]:
            continue
        phrase = []
        for following in ids[position + 1 : position + 1 + MAX_PHRASE_TOKENS]:
            if following in stop_ids or following == seg_id:
                break
            phrase.append(following)
        phrases.append(phrase)
    return phrases


def region_naming_loss(model, batch: TrainingBatch, stop_ids: frozenset[int]) -> torch.Tensor:
    """Mean cross-entropy of the phrase tokens predicted from mask-pooled visual tokens (0 when nothing applies).

    Args:
        model: a Qwen-family :class:`~sa2va.modeling.sa2va.Sa2VAModel` (unwrapped).
        batch: a collated batch; its `targets` are `(num_seg, num_frames, h, w)` masks per sample.
        stop_ids: from :func:`phrase_stop_ids`.
    """
    mllm = model.mllm

    def zero() -> torch.Tensor:  # still reaches the tower, so every process's backward covers the same parameters
        return sum(p.sum() for p in mllm.model.visual.parameters()) * 0.0

    if batch.pixel_values is None or batch.image_grid_thw is None:
        return zero()
    grids = batch.image_grid_thw.tolist()
    merge = mllm.model.visual.spatial_merge_size
    # which grid rows belong to which sample: a sample's visual tokens are the rows that add up to its count
    counts = (batch.mm_token_type_ids != 0).sum(1).tolist()
    rows, start = [], 0
    for count in counts:
        taken, end = 0, start
        while taken < count and end < len(grids):
            t, h, w = grids[end]
            taken, end = taken + t * h * w // merge**2, end + 1
        rows.append(list(range(start, end)))
        start = end
    wanted = []  # (sample, grid row, mask (h, w), phrase)
    for b, sample_rows in enumerate(rows):
        targets = batch.targets[b]
        if targets is None or len(sample_rows) != 1 or grids[sample_rows[0]][0] != 1 or targets.shape[1] != 1:
            continue
        phrases = seg_phrases(batch.input_ids[b], batch.labels[b], model.config.seg_token_id, stop_ids)
        for mask, phrase in zip(targets[:, 0], phrases):
            if phrase:
                wanted.append((sample_rows[0], mask, phrase))
    if not wanted:
        return zero()
    device = model.device
    features = mllm.model.get_image_features(
        pixel_values=batch.pixel_values.to(device, mllm.dtype), image_grid_thw=batch.image_grid_thw.to(device),
        return_dict=True,
    ).pooler_output
    features = list(features) if isinstance(features, (list, tuple)) else list(
        torch.split(features, [t * h * w // merge**2 for t, h, w in grids])
    )
    pooled, targets = [], []
    for row, mask, phrase in wanted:
        _, h, w = grids[row]
        cells = F.adaptive_avg_pool2d(mask[None, None].float().to(device), (h // merge, w // merge)).flatten()
        if cells.sum() < 0.25:  # a sliver of a cell: nothing to name
            continue
        pooled.append((cells[:, None] * features[row]).sum(0) / cells.sum())
        targets.append(phrase)
    if not pooled:
        return zero()
    logits = mllm.lm_head(final_norm(mllm)(torch.stack(pooled)))  # (regions, vocab)
    rows_of = torch.tensor([i for i, phrase in enumerate(targets) for _ in phrase], device=device)
    tokens = torch.tensor([token for phrase in targets for token in phrase], device=device)
    return F.cross_entropy(logits[rows_of].float(), tokens)


__all__ = ["phrase_stop_ids", "region_naming_loss", "seg_phrases"]
