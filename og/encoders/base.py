"""The vision-encoder contract every encoder family implements.

`forward(pixels (B, 3, H, W)) -> patch features (B, h*w, D)` from the spec's layer (LLaVA's
-2 by default), CLS / register / other prefix tokens dropped. `grid`, `dim`, `image_size`,
`mean` and `std` come from the model itself, never hard-coded.

Optional: `forward_with_cls_attention(pixels) -> (features (B, h*w, D), attention (B, h*w))`,
the same features plus the last layer's attention of the CLS token to each patch (heads
averaged), for `prune(by=cls)`; an encoder that cannot give it raises a clear error.
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

    def forward_with_cls_attention(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, h*w, D) and the last layer's CLS attention to every patch (B, h*w)."""
        raise ValueError(f"encoder {self.spec.id!r} does not give its CLS attention; fusion prune(by=cls) needs a "
                         "CLIP encoder (a CLS token), or use prune(by=norm|random)")


def cls_attention(q_proj: nn.Module, k_proj: nn.Module, heads: int, scale: float, x: torch.Tensor,
                  n_prefix: int) -> torch.Tensor:
    """(B, L - n_prefix) the CLS token's (position 0) attention to the patches, heads averaged.

    `x` (B, L, D) is the attention's input (the block's normed hidden states)."""
    b, length, _ = x.shape
    q = q_proj(x[:, :1]).reshape(b, 1, heads, -1).transpose(1, 2)  # (B, H, 1, hd)
    k = k_proj(x).reshape(b, length, heads, -1).transpose(1, 2)  # (B, H, L, hd)
    prob = (q.float() @ k.float().transpose(-1, -2) * scale).softmax(-1)  # (B, H, 1, L)
    return prob.mean(1)[:, 0, n_prefix:]  # (B, h*w)


def select_layer(hidden_states: tuple[torch.Tensor, ...], layer: int, n_prefix: int) -> torch.Tensor:
    """hidden_states[layer] with the first `n_prefix` tokens (CLS, registers) dropped."""
    return hidden_states[layer][:, n_prefix:]  # (B, h*w, D)
