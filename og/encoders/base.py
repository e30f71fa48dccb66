"""The vision-encoder contract every encoder family implements.

`forward(pixels (B, 3, H, W)) -> patch features (B, h*w, D)` from the spec's layer (LLaVA's
-2 by default), CLS / register / other prefix tokens dropped. `grid`, `dim`, `image_size`,
`mean` and `std` come from the model itself, never hard-coded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from og.spec import EncoderSpec


class VisionEncoder(nn.Module):
    """Base class: subclasses set the attributes below in `__init__` and implement `forward`."""

    spec: EncoderSpec
    grid: tuple[int, int]  # (h, w) patches
    dim: int  # D, the feature size
    image_size: tuple[int, int]  # (H, W) the encoder expects
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_spec(cls, spec: EncoderSpec, path: str | None = None,
                  config: dict[str, Any] | None = None) -> VisionEncoder:
        """Real weights from a local `path`; else random weights from `config` (a dict saved by
        `config_dict()`) or from the spec's named variant."""
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        """What `from_spec(spec, config=...)` needs to rebuild this structure (weights aside)."""
        raise NotImplementedError

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D)
        raise NotImplementedError


def select_layer(hidden_states: tuple[torch.Tensor, ...], layer: int, n_prefix: int) -> torch.Tensor:
    """hidden_states[layer] with the first `n_prefix` tokens (CLS, registers) dropped."""
    return hidden_states[layer][:, n_prefix:]  # (B, h*w, D)
