"""open_clip vision towers: the variant is an open_clip model name, optionally `name@tag`.

`@tag` names the pretrained weights (`open_clip.list_pretrained_tags_by_model(name)`), so the
tower gets that release's QuickGELU switch and mean/std from open_clip's table, e.g.
`open_clip:ViT-L-14-336@openai` (nothing is downloaded). Real weights: a local open_clip
checkpoint file of the whole model (safetensors, or .bin/.pt read with
`torch.load(weights_only=True)`), loaded strictly by open_clip; the text tower is dropped
afterwards. `open_clip:tiny` is a 2-block ViT for tests.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from torch import nn

from og.encoders.base import VisionEncoder
from og.encoders.layers import block_index
from og.registry import ENCODERS
from og.spec import EncoderSpec, SpecError

TINY: dict[str, Any] = {
    "model_name": "ViT-B-32",
    "model_kwargs": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 64, "layers": 2, "head_width": 16,
                       "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    },
}


def _vit_geometry(visual: VisionTransformer) -> tuple[tuple[int, int], int, tuple[int, int], int]:
    return tuple(visual.grid_size), visual.transformer.width, tuple(visual.image_size), len(
        visual.transformer.resblocks)


def _timm_geometry(visual: TimmModel) -> tuple[tuple[int, int], int, tuple[int, int], int]:
    trunk = visual.trunk
    return tuple(trunk.patch_embed.grid_size), trunk.embed_dim, tuple(trunk.patch_embed.img_size), len(
        trunk.blocks)


# tower type -> (grid (h, w), dim, image size (H, W), number of blocks)
GEOMETRY: dict[type, Callable[[Any], tuple[tuple[int, int], int, tuple[int, int], int]]] = {
    VisionTransformer: _vit_geometry,
    TimmModel: _timm_geometry,
}


@contextlib.contextmanager
def no_random_init_warning() -> Iterator[None]:
    """Hide open_clip's root-logger warning that a model without `pretrained` is random: og
    builds random towers on purpose (tests, or before loading an og checkpoint)."""

    def keep(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def build_for_variant(variant: str) -> dict[str, Any]:
    """The create_model arguments (and mean/std when a tag gives them) for `name[@tag]`."""
    if variant == "tiny":
        return copy.deepcopy(TINY)
    name, _, tag = variant.partition("@")
    build: dict[str, Any] = {"model_name": name, "model_kwargs": {}}
    if tag:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if tag not in tags:
            raise SpecError(
                f"open_clip model {name!r} has no pretrained tag {tag!r}; tags: {', '.join(tags) or 'none'}"
            )
        cfg = open_clip.get_pretrained_cfg(name, tag)
        build.update(mean=list(cfg["mean"]), std=list(cfg["std"]))
        if cfg.get("quick_gelu"):
            build["model_kwargs"]["quick_gelu"] = True
    return build


@ENCODERS.register("open_clip")
class OpenCLIPEncoder(VisionEncoder):
    """open_clip ViT (native or timm trunk); the variant is the open_clip model name, or tiny."""

    def __init__(self, spec: EncoderSpec, visual: nn.Module, build: dict[str, Any], mean: Any, std: Any) -> None:
        super().__init__()
        geometry = GEOMETRY.get(type(visual))
        if geometry is None:
            raise SpecError(
                f"open_clip model {build['model_name']!r} has a {type(visual).__name__} image tower; og reads "
                "patch tokens from ViT towers only (e.g. ViT-L-14-336, ViT-B-16-SigLIP)"
            )
        self.spec = spec
        self.visual = visual
        self.build = copy.deepcopy(build)
        self.grid, self.dim, self.image_size, n_blocks = geometry(visual)
        self.block = block_index(spec, n_blocks)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    @classmethod
    def from_spec(cls, spec: EncoderSpec, path: str | None = None,
                  config: dict[str, Any] | None = None) -> OpenCLIPEncoder:
        build = copy.deepcopy(config) if config else build_for_variant(spec.variant)
        mean, std = build.pop("mean", None), build.pop("std", None)
        name = build["model_name"]
        if name not in open_clip.list_models():
            close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
            raise SpecError(f"unknown open_clip model {name!r}; close names: {', '.join(close) or 'none'} "
                            "(see open_clip.list_models(), or use variant 'tiny')")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"open_clip weights {path!r} not found; give a local checkpoint file "
                                    "(.safetensors, .bin or .pt) of the whole open_clip model")
        with no_random_init_warning():
            model = open_clip.create_model(name, pretrained=path, weights_only=True, **build["model_kwargs"])
        visual = model.visual
        return cls(spec, visual, build, mean or visual.preprocess_cfg["mean"], std or visual.preprocess_cfg["std"])

    def config_dict(self) -> dict[str, Any]:
        return {**copy.deepcopy(self.build), "mean": list(self.mean), "std": list(self.std)}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D)
        pixels = pixels.to(next(self.visual.parameters()).dtype)  # (B, 3, H, W)
        out = self.visual.forward_intermediates(
            pixels, indices=[self.block], stop_early=True, intermediates_only=True, output_fmt="NLC"
        )
        return out["image_intermediates"][0]  # (B, h*w, D), prefix tokens already split off
