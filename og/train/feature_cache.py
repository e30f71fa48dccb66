"""The frozen encoder's outputs, computed once per image and served again (`cache_encoder_features`).

A stage that freezes the vision encoder runs it on every image of every batch, so a run of many
epochs on a small dataset (the miniatures: 40-60 epochs of 2,000 images) encodes each image
again and again for the same result. `EncoderFeatureCache` keeps `model.encode_images`' output
per image key (the image's path; two records of one image share it) and hands the model the
batch's rows (`vision_features`), so the encoder runs once per image and run.

It is exact only when the encoder's pass is deterministic (no active dropout): the first images
it encodes are encoded twice and must agree, else a clear error. It holds every image's features
(images x patches x width floats, on the model's device): meant for small data, not for LLaVA's
665K images. The stage must freeze the encoder (`run_stage` refuses it otherwise).
"""

from __future__ import annotations

from typing import Any

import torch

from og.model.modeling import VisionFeatures

TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # two passes of one encoder over the same images may differ in the last bits


class EncoderFeatureCache:
    """`cache(model, pixel_values (N, 3, H, W), keys)` -> `model.encode_images(pixel_values)`, from memory
    for the keys seen before; `hits` / `misses` count images."""

    def __init__(self) -> None:
        self.rows: dict[str, VisionFeatures] = {}  # key -> (h*w, Dv), extras of one image
        self.hits = 0
        self.misses = 0
        self.checked = False

    def __len__(self) -> int:
        return len(self.rows)

    def __call__(self, model: Any, pixel_values: torch.Tensor, keys: list[str]) -> VisionFeatures:
        if len(keys) != pixel_values.shape[0]:
            raise ValueError(f"{len(keys)} image keys for {pixel_values.shape[0]} images; give one key per image")
        first: dict[str, int] = {}  # key -> its first row in the batch
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        new = [i for key, i in first.items() if key not in self.rows]
        if new:
            self._encode(model, pixel_values[new], [keys[i] for i in new])  # (n, 3, H, W)
        self.misses += len(new)
        self.hits += len(keys) - len(new)
        rows = [self.rows[key] for key in keys]
        features = torch.stack([f for f, _ in rows])  # (N, h*w, Dv)
        extras = {name: torch.stack([e[name] for _, e in rows]) for name in rows[0][1]}  # (N, ...)
        return features, extras

    @torch.no_grad()
    def _encode(self, model: Any, pixels: torch.Tensor, keys: list[str]) -> None:
        features, extras = model.encode_images(pixels)  # (n, h*w, Dv), {name: (n, ...)}
        if not self.checked:  # a pass with dropout (or any randomness) cannot be served again
            again, _ = model.encode_images(pixels)  # (n, h*w, Dv)
            if not torch.allclose(features, again, **TOLERANCE):
                gap = (features - again).abs().max().item()
                raise ValueError(f"the encoder gives other features for the same images on a second pass (max "
                                 f"difference {gap:.3g}: dropout?); train without cache_encoder_features")
            self.checked = True
        for i, key in enumerate(keys):
            self.rows[key] = (features[i].detach(), {name: value[i].detach() for name, value in extras.items()})
