"""LLM position ids for text with expanded image spans, incl. grouped rope (`grouped_rope`).

Text tokens advance the position by 1. With grouped positions, the visual tokens of one image
share positions by their layout `group`: a token at group g of a span starting at position s
gets s + g, and the text after the span continues at s + G (G groups in the image). Padding
(attention_mask 0) gets 0 and never advances the count, so positions start at 0 at the first
real token whatever the left padding. Dense tensor work only (no host round trip).
"""

from __future__ import annotations

import torch

from og.fusion.layout import PackedLayout


def text_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counting real tokens from 0; padding gets 0."""
    mask = attention_mask.long()  # (B, L)
    return (mask.cumsum(-1) - 1).clamp(min=0) * mask  # (B, L)


def grouped_position_ids(image_mask: torch.Tensor, attention_mask: torch.Tensor | None,
                         layout: PackedLayout) -> torch.Tensor:
    """(B, L) positions where each image span advances by its number of rope groups.

    `image_mask` (B, L) marks the placeholders, filled in row-major order by the tokens of
    `layout` (image 0 first), as `masked_scatter` fills them.
    """
    real = torch.ones_like(image_mask, dtype=torch.long) if attention_mask is None else attention_mask.long()
    layout = layout.to(image_mask.device)
    group = layout.group  # (ΣT,)
    n_images = layout.lengths.numel()
    n_groups = torch.zeros(n_images, dtype=torch.long, device=group.device).scatter_reduce(
        0, layout.image, group + 1, reduce="amax")  # (N,)
    last = torch.cumsum(layout.lengths, 0) - 1  # (N,) each image's last token
    span_advance = torch.zeros_like(group).index_put((last,), n_groups)  # (ΣT,) G at a span's end, else 0
    advance = real.masked_scatter(image_mask, span_advance)  # (B, L)
    offset = torch.zeros_like(advance).masked_scatter(image_mask, group)  # (B, L) group inside a span
    before = advance.cumsum(-1) - advance  # (B, L) exclusive prefix sum
    return (before + offset) * real  # (B, L)
