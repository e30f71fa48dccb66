"""Probe a vision encoder before spending a training run: what do its patch features say about objects?

Per object of a `shapes` data folder (its `scenes.jsonl`), one feature from the encoder's patch
features (the layer the LLM reads), by `pool`:
- `box`: their mean weighted by how much of each patch the object's visible box covers (the box goes
  through the same pad / resize / crop as the image, then `area` coverage on the patch grid, so it
  is right for any encoder size): what the features hold about the object somewhere;
- `token`: the one patch token that holds the object's centre pixel (the same transform): what a
  single visual token says about its object, which is what an LLM attending to it reads. A feature
  can pool to shape while no token holds it (measured in the README).

Targets: `shape`, `color`, `size`, and the object's half of the image, `left_right` (centre left of
the middle) and `above_below`.

Two probes per target, fitted on 80 % of the images and scored on the other 20 % (split by image,
seeded): a linear one (multinomial logistic regression) and a small MLP (one hidden layer of 256).
Features are standardised with the fitting split's mean and std. `majority` is the accuracy of
always answering the fitting split's most frequent class. `shuffle=True` permutes the labels (a
control: the probes must fall to chance).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from og.fusion import downsample
from og.masks.geometry import ImageTransform
from og.masks.masks import Masks

TARGETS: dict[str, Callable[[dict[str, Any], int], str]] = {
    "shape": lambda o, side: o["shape"],
    "color": lambda o, side: o["color"],
    "size": lambda o, side: o["size"],
    "left_right": lambda o, side: "left" if o["cx"] < side / 2 else "right",
    "above_below": lambda o, side: "above" if o["cy"] < side / 2 else "below",
}


def read_scenes(data_dir: str | Path, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
    """The `scenes.jsonl` rows of one split (images under images/<split>/), at most `limit`."""
    path = Path(data_dir) / "scenes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; probe a `shapes` data folder (og quickstart writes one)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["image"].startswith(f"images/{split}/")]
    if not rows:
        raise ValueError(f"{path} has no {split!r} images; splits are 'train' and 'test'")
    return rows[:limit]


POOLS = ("box", "token")


def _regions(row: dict[str, Any], height: int, width: int, pool: str) -> np.ndarray:
    """(M, H, W) bool per object: its box (`box`) or its centre pixel (`token`)."""
    regions = np.zeros((len(row["objects"]), height, width), bool)
    for k, o in enumerate(row["objects"]):
        if pool == "box":
            x0, y0, x1, y1 = o["box"]
            regions[k, y0:y1 + 1, x0:x1 + 1] = True
        else:
            regions[k, min(height - 1, int(o["cy"])), min(width - 1, int(o["cx"]))] = True
    return regions


@torch.no_grad()
def object_features(encoder: nn.Module, data_dir: str | Path, scenes: list[dict[str, Any]],
                    batch_size: int = 64, pool: str = "box") -> tuple[torch.Tensor, dict[str, list[str]], np.ndarray]:
    """(features (N, D), labels per target, image index (N,)) for every object of `scenes` (`pool`: module doc)."""
    if pool not in POOLS:
        raise ValueError(f"pool={pool!r} is not one of {POOLS}")
    transform = ImageTransform.for_encoder(encoder)
    device = next(encoder.parameters()).device
    feats, groups, labels = [], [], {name: [] for name in TARGETS}
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start:start + batch_size]
        pixels, weights, sides = [], [], []
        for row in chunk:
            image = Image.open(Path(data_dir) / row["image"]).convert("RGB")
            regions = _regions(row, image.height, image.width, pool)
            px, moved = transform.transform(image, Masks(regions, np.ones(len(regions), np.float32)))
            cov = downsample(moved, encoder.grid, "area").flatten(1)  # (M, h*w)
            if pool == "token":  # the patch holding (most of) the centre pixel
                cov = nn.functional.one_hot(cov.argmax(1), cov.shape[1]).float()  # (M, h*w)
            pixels.append(px)
            sides.append(max(image.size))
            weights.append(cov / cov.sum(1, keepdim=True).clamp_min(1e-8))
        out = encoder(torch.stack(pixels).to(device)).float().cpu()  # (B, h*w, D)
        for b, (row, w, side) in enumerate(zip(chunk, weights, sides, strict=True)):
            feats.append(w @ out[b])  # (M, D)
            groups += [start + b] * len(w)
            for name, fn in TARGETS.items():
                labels[name] += [fn(o, side) for o in row["objects"]]
    return torch.cat(feats), labels, np.asarray(groups)


def _fit(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, kind: str, n_classes: int, seed: int,
         epochs: int = 300) -> float:
    """Accuracy on ~train of a probe fitted (full batch, AdamW) on `train` rows."""
    torch.manual_seed(seed)
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std  # (N, D)
    d = x.shape[1]
    head = nn.Linear(d, n_classes) if kind == "linear" else nn.Sequential(
        nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, n_classes))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2 if kind == "linear" else 3e-3, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(head(x[train]), y[train]).backward()
        opt.step()
    with torch.no_grad():
        return float((head(x[~train]).argmax(1) == y[~train]).float().mean())


def fit_probes(features: torch.Tensor, labels: dict[str, list[str]], groups: np.ndarray, seed: int = 0,
               shuffle: bool = False, held_out: float = 0.2) -> dict[str, dict[str, float]]:
    """{"linear"|"mlp"|"majority": {target: accuracy on the held-out images}}."""
    rng = np.random.default_rng(seed)
    images = np.unique(groups)
    test_images = rng.choice(images, size=max(1, int(round(held_out * len(images)))), replace=False)
    train = torch.as_tensor(~np.isin(groups, test_images))  # (N,) bool
    if bool(train.all()) or not bool(train.any()):
        raise ValueError(f"{len(images)} images cannot be split {1 - held_out:.0%} / {held_out:.0%}; probe more images")
    report: dict[str, dict[str, float]] = {"linear": {}, "mlp": {}, "majority": {}}
    x = features.float()
    for name, values in labels.items():
        classes = sorted(set(values))
        y = torch.tensor([classes.index(v) for v in values])  # (N,)
        if shuffle:
            y = y[torch.as_tensor(rng.permutation(len(y)))]
        counts = torch.bincount(y[train], minlength=len(classes))
        report["majority"][name] = float((y[~train] == counts.argmax()).float().mean())
        for kind in ("linear", "mlp"):
            report[kind][name] = _fit(x, y, train, kind, len(classes), seed)
    return report


def probe_encoder(encoder: nn.Module, data_dir: str | Path, split: str = "train", images: int | None = 1500,
                  seed: int = 0, shuffle: bool = False, pool: str = "box") -> dict[str, Any]:
    """Object features of `images` images of `split` (`pool`: module doc), then `fit_probes`; adds the object count."""
    scenes = read_scenes(data_dir, split, images)
    was_training = encoder.training
    encoder.eval()
    features, labels, groups = object_features(encoder, data_dir, scenes, pool=pool)
    encoder.train(was_training)
    report: dict[str, Any] = fit_probes(features, labels, groups, seed=seed, shuffle=shuffle)
    report.update({"objects": int(len(features)), "images": len(scenes), "split": split, "pool": pool})
    return report


def format_probe(report: dict[str, Any]) -> str:
    """One line: 'shape 0.93 (linear 0.71) | color 1.00 (1.00) | ...' (MLP first, linear in brackets)."""
    return " | ".join(f"{name} {report['mlp'][name]:.2f} ({report['linear'][name]:.2f})" for name in TARGETS)
