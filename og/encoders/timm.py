"""timm ViT encoders: any ViT-style timm model name as the variant (vit_*, deit*, eva*, ...).

Real weights: a local timm-format state dict (a .safetensors / .bin / .pt file, or a folder
holding model.safetensors or pytorch_model.bin), loaded strictly; only the classifier head is
left out (og uses patch tokens). `timm:tiny` is a 2-block ViT with 2 register tokens.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from og.encoders.base import VisionEncoder
from og.encoders.layers import block_index
from og.registry import ENCODERS
from og.spec import EncoderSpec, SpecError

TINY: dict[str, Any] = {
    "model_name": "vit_base_patch16_224",
    "kwargs": {"img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4,
               "mlp_ratio": 2.0, "reg_tokens": 2},
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: str) -> Path:
    """The checkpoint file at `path`, or the first of WEIGHT_FILES inside the folder `path`."""
    p = Path(path)
    if p.is_dir():
        p = next((p / f for f in WEIGHT_FILES if (p / f).is_file()), p / WEIGHT_FILES[0])
    if not p.is_file():
        raise FileNotFoundError(f"timm weights {str(p)!r} not found; give a local state dict file "
                                f"or a folder holding one of {', '.join(WEIGHT_FILES)}")
    return p


def load_weights(model: nn.Module, path: str) -> None:
    """Load a timm-format state dict strictly, leaving out the classifier head."""
    file = weights_file(path)
    state = timm.models.load_state_dict(str(file), weights_only=True)
    head = model.pretrained_cfg.get("classifier", "head")
    state = {k: v for k, v in state.items() if not (k == head or k.startswith(f"{head}."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"timm weights {str(file)!r} do not match {model.default_cfg.get('architecture')!r}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
            "give a timm-format state dict of the variant's model"
        )


@ENCODERS.register("timm")
class TimmEncoder(VisionEncoder):
    """timm ViT-style model; the variant is the timm model name, or tiny."""

    def __init__(self, spec: EncoderSpec, model: nn.Module, build: dict[str, Any]) -> None:
        super().__init__()
        if not all(hasattr(model, a) for a in ("patch_embed", "blocks", "forward_intermediates")):
            raise SpecError(f"timm model {build['model_name']!r} is not a ViT-style model (no patch_embed / "
                            "blocks); og reads patch tokens from vit_*, deit*, eva* and similar models")
        self.spec = spec
        self.model = model
        self.build = copy.deepcopy(build)
        self.grid = tuple(model.patch_embed.grid_size)
        self.image_size = tuple(model.patch_embed.img_size)
        self.dim = model.embed_dim
        self.block = block_index(spec, len(model.blocks))
        data = timm.data.resolve_model_data_config(model)
        self.mean = tuple(float(v) for v in build.get("mean", data["mean"]))
        self.std = tuple(float(v) for v in build.get("std", data["std"]))

    @classmethod
    def from_spec(cls, spec: EncoderSpec, path: str | None = None,
                  config: dict[str, Any] | None = None) -> TimmEncoder:
        build = config or (TINY if spec.variant == "tiny" else {"model_name": spec.variant, "kwargs": {}})
        name = build["model_name"]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            raise SpecError(f"unknown timm model {name!r}; close names: {', '.join(close) or 'none'} "
                            "(see timm.list_models('vit*'), or use variant 'tiny')")
        model = timm.create_model(name, pretrained=False, num_classes=0, **build["kwargs"])
        if path is not None:
            load_weights(model, path)
        return cls(spec, model, build)

    def config_dict(self) -> dict[str, Any]:
        return {**copy.deepcopy(self.build), "mean": list(self.mean), "std": list(self.std)}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D)
        pixels = pixels.to(self.model.patch_embed.proj.weight.dtype)  # (B, 3, H, W)
        feats = self.model.forward_intermediates(
            pixels, indices=[self.block], norm=False, stop_early=True, intermediates_only=True, output_fmt="NLC"
        )
        return feats[0]  # (B, h*w, D), prefix tokens (CLS, registers) dropped by timm

    def forward_with_cls_attention(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, h*w, D) and the last block's CLS attention to each patch (B, h*w), in one pass."""
        m = self.model
        attn = m.blocks[-1].attn
        if getattr(m, "cls_token", None) is None or not hasattr(attn, "qkv") or len(m.blocks) < 2:
            raise ValueError(f"encoder {self.spec.id!r} has no CLS token or no plain qkv attention in its last block; "
                             "fusion prune(by=cls) needs one: use a CLIP / ViT encoder, or prune(by=norm|random)")
        pixels = pixels.to(m.patch_embed.proj.weight.dtype)  # (B, 3, H, W)
        last = len(m.blocks) - 1
        indices = sorted({self.block, last - 1})
        outs = dict(zip(indices, m.forward_intermediates(
            pixels, indices=indices, return_prefix_tokens=True, norm=False, stop_early=True, intermediates_only=True,
            output_fmt="NLC"), strict=True))
        patches, prefix = outs[last - 1]  # (B, h*w, D), (B, P, D): the last block's input
        x = m.blocks[-1].norm1(torch.cat([prefix, patches], 1))  # (B, L, D)
        b, length, d = x.shape
        qkv = attn.qkv(x).reshape(b, length, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, H, L, hd)
        q, k = attn.q_norm(qkv[0][:, :, :1]), attn.k_norm(qkv[1])  # (B, H, 1, hd), (B, H, L, hd)
        prob = (q.float() @ k.float().transpose(-1, -2) * attn.scale).softmax(-1)  # (B, H, 1, L)
        return outs[self.block][0], prob.mean(1)[:, 0, prefix.shape[1]:]  # (B, h*w, D), (B, h*w)
