"""Vision-to-language projectors (PROJECTORS): `linear` and LLaVA-1.5's `mlp2x_gelu`.

Constructor `(vision_dim, text_dim)`; `forward(tokens (..., Dv)) -> (..., Dl)`. Parameter names
follow transformers' `LlavaMultiModalProjector` (`linear_1`, `act`, `linear_2`), so llava-hf
projector weights load 1:1 into `mlp2x_gelu`.
"""

from __future__ import annotations

import torch
from torch import nn

from og.registry import PROJECTORS


@PROJECTORS.register("linear")
class LinearProjector(nn.Module):
    """One linear layer Dv -> Dl (LLaVA-1.0)."""

    def __init__(self, vision_dim: int, text_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(vision_dim, text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (..., Dv) -> (..., Dl)
        return self.linear_1(tokens)  # (..., Dl)


@PROJECTORS.register("mlp2x_gelu")
class MLPProjector(nn.Module):
    """Linear Dv -> Dl, GELU, Linear Dl -> Dl (LLaVA-1.5, OG-LLaVA)."""

    def __init__(self, vision_dim: int, text_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(vision_dim, text_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text_dim, text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (..., Dv) -> (..., Dl)
        return self.linear_2(self.act(self.linear_1(tokens)))  # (..., Dl)
