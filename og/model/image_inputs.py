"""Image inputs the model makes itself: the layout of a mask-free fusion, and the dummy image of
a text-only batch.

- `planned_layout`: a fusion whose tokens need no masks (`patches`, LLaVA-1.5) gives every image
  the same layout, so `model(input_ids=..., pixel_values=...)` (the transformers-Llava call)
  works without the processor's `layout`: the model plans it exactly as the processor would.
- `dummy_image`: under DeepSpeed ZeRO-3 every rank must run the same modules in every step (a
  module's parameters are gathered by a collective call around its forward), and under DDP
  every trainable parameter must get a gradient on every rank. A rank whose batch has no image
  would skip the encoder, fusion, position encoding and projector while the others run them,
  and hang. As LLaVA does, such a batch runs the vision path on one blank image whose tokens
  are then dropped (`features[:0]`): every parameter takes part in the graph and gets a zero
  gradient, the loss and the logits are unchanged.
"""

from __future__ import annotations

import torch

from og.fusion import PackedLayout, plan_layout
from og.spec import ModelSpec


def planned_layout(spec: ModelSpec, grid: tuple[int, int], n_images: int) -> PackedLayout:
    """The packed layout of `n_images` images under a mask-free fusion (what the processor plans)."""
    if spec.uses_masks:
        raise ValueError(f"fusion {spec.fusion.name!r} plans each image's tokens from its masks, so pixel_values "
                         "need their layout: pass layout= as the processor returns it (processor(texts, images))")
    return PackedLayout.pack([plan_layout(spec.fusion, None, grid)] * n_images)


def dummy_image(spec: ModelSpec, grid: tuple[int, int], image_size: tuple[int, int],
                device: torch.device | str) -> tuple[torch.Tensor, PackedLayout]:
    """One blank image (1, 3, H, W) and its layout with one mask over the whole grid, so every
    part of the fusion (global view, begin-of-mask vector, pooled token) takes part."""
    h, w = int(image_size[0]), int(image_size[1])
    pixels = torch.zeros(1, 3, h, w, device=device)  # (1, 3, H, W), float32 as the processor's pixels
    coverage = torch.ones(1, int(grid[0]), int(grid[1]))  # (1, h, w) one mask covering every patch
    return pixels, PackedLayout.pack([plan_layout(spec.fusion, coverage, grid)])
