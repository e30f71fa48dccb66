"""The relation probe: can a small reader answer "is A left of B?" from an encoder's patch tokens?

The object probe (`og.eval.probe`) pools each object's features over its oracle box, so it says
whether position is *in* the features, not whether a model that must first *find* the object (as
an LLM must, from "the red circle") can read it. This probe asks the second question with the LLM
taken out: a 2-layer transformer (width 64, 4 heads) reads an axis token, two query tokens (the
referents' colour + shape embeddings, each with its role) and the image's patch tokens (projected
by a small MLP), and answers from the axis token whether A comes first on that axis.

Pairs: every ordered pair of objects of a `shapes` image that lie apart on an axis by the
generator's rule (one visible box ends before the other begins), both axes; the referents are
named by colour + shape, as the data's relation questions name them. Images are split 80 / 20
(seeded); the reader trains on the first part for `steps` steps of `batch` pairs (AdamW) and is
scored on the held-out images' pairs every `eval_every` steps (the learning curve: there is often
a long plateau before the drop). `position=True` appends one-hot patch row and column to every
token (what explicit positions would add); `shuffle=True` permutes the answers (a control: the
held-out accuracy must fall to chance). `majority` is always answering the training part's more
frequent answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from og.eval.probe import read_scenes
from og.masks.geometry import ImageTransform

AXES = ("left_right", "above_below")  # axis 0 compares box columns (x), axis 1 rows (y)
_SPANS = ((0, 2), (1, 3))  # (start, end) indices of a box (x0, y0, x1, y1) along each axis


def relation_pairs(scenes: list[dict[str, Any]]) -> tuple[torch.Tensor, list[str], list[str]]:
    """(pairs (P, 7) long: image, colour A, shape A, colour B, shape B, axis, A-first), colours, shapes."""
    colors = sorted({o["color"] for r in scenes for o in r["objects"]})
    shapes = sorted({o["shape"] for r in scenes for o in r["objects"]})
    rows = []
    for i, scene in enumerate(scenes):
        objs = scene["objects"]
        for a, ob_a in enumerate(objs):
            for b, ob_b in enumerate(objs):
                for axis, (lo, hi) in enumerate(_SPANS):
                    first, second = ob_a["box"][hi] < ob_b["box"][lo], ob_b["box"][hi] < ob_a["box"][lo]
                    if a != b and (first or second):
                        rows.append((i, colors.index(ob_a["color"]), shapes.index(ob_a["shape"]),
                                     colors.index(ob_b["color"]), shapes.index(ob_b["shape"]), axis, int(first)))
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 7), colors, shapes


@torch.no_grad()
def patch_features(encoder: nn.Module, data_dir: str | Path, scenes: list[dict[str, Any]],
                   batch_size: int = 64) -> torch.Tensor:
    """The encoder's patch tokens (the layer the LLM reads) of every scene's image: (I, h*w, D) float32."""
    transform = ImageTransform.for_encoder(encoder)
    device = next(encoder.parameters()).device
    out = []
    for start in range(0, len(scenes), batch_size):
        pixels = [transform.transform_image(Image.open(Path(data_dir) / r["image"]).convert("RGB"))
                  for r in scenes[start:start + batch_size]]
        out.append(encoder(torch.stack(pixels).to(device)).float().cpu())  # (B, h*w, D)
    return torch.cat(out)


def with_position(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(I, h*w, D) -> (I, h*w, D + h + w): one-hot patch row and column appended to every token."""
    h, w = grid
    onehot = torch.cat([torch.eye(h).repeat_interleave(w, 0), torch.eye(w).repeat(h, 1)], 1)  # (h*w, h+w)
    return torch.cat([features, onehot.expand(len(features), -1, -1)], 2)


class RelationReader(nn.Module):
    """Axis token + two referent query tokens + projected patch tokens -> 2-layer transformer -> answer."""

    def __init__(self, dim: int, n_colors: int, n_shapes: int, width: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.color, self.shape = nn.Embedding(n_colors, width), nn.Embedding(n_shapes, width)
        self.role, self.axis = nn.Embedding(2, width), nn.Embedding(len(AXES), width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, 2)

    def forward(self, patches: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """patches (B, N, D), pairs (B, 7) -> logits (B, 2)."""
        a = self.color(pairs[:, 1]) + self.shape(pairs[:, 2]) + self.role.weight[0]  # (B, W)
        b = self.color(pairs[:, 3]) + self.shape(pairs[:, 4]) + self.role.weight[1]  # (B, W)
        x = torch.cat([self.axis(pairs[:, 5])[:, None], a[:, None], b[:, None], self.project(patches)], 1)
        return self.head(self.blocks(x)[:, 0])  # (B, 2) read at the axis token


def _accuracy(reader: RelationReader, features: torch.Tensor, pairs: torch.Tensor, limit: int = 4096) -> float:
    pairs = pairs[:limit]
    with torch.no_grad():
        return float((reader(features[pairs[:, 0]], pairs).argmax(1) == pairs[:, 6]).float().mean())


def held_out_pairs(image_of: np.ndarray, held_out: float, rng: np.random.Generator) -> np.ndarray:
    """bool (P,): the pairs whose image is among ~held_out of the images (drawn with `rng`)."""
    images = np.unique(image_of)
    test_images = rng.choice(images, size=max(1, int(round(held_out * len(images)))), replace=False)
    is_test = np.isin(image_of, test_images)  # (P,)
    if is_test.all() or not is_test.any():
        raise ValueError(f"{len(images)} images with relation pairs cannot be split {1 - held_out:.0%} / "
                         f"{held_out:.0%}; probe more images (with two or more objects)")
    return is_test


def fit_relation(features: torch.Tensor, pairs: torch.Tensor, n_colors: int, n_shapes: int, steps: int = 3000,
                 batch: int = 64, lr: float = 1e-3, seed: int = 0, held_out: float = 0.2, shuffle: bool = False,
                 eval_every: int = 500) -> dict[str, Any]:
    """Train the reader on the pairs of ~held_out of the images; held-out accuracy, its curve, train accuracy."""
    rng = np.random.default_rng(seed)
    is_test = torch.as_tensor(held_out_pairs(pairs[:, 0].numpy(), held_out, rng))  # (P,)
    pairs = pairs.clone()
    if shuffle:
        pairs[:, 6] = pairs[torch.as_tensor(rng.permutation(len(pairs))), 6]
    train, test = pairs[~is_test], pairs[is_test]
    torch.manual_seed(seed)
    reader = RelationReader(features.shape[-1], n_colors, n_shapes)
    opt = torch.optim.AdamW(reader.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for step in range(1, steps + 1):
        chosen = train[torch.randint(len(train), (batch,), generator=generator)]  # (batch, 7)
        loss = nn.functional.cross_entropy(reader(features[chosen[:, 0]], chosen), chosen[:, 6])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            curve.append((step, round(_accuracy(reader, features, test), 4)))
    majority = int(train[:, 6].float().mean() >= 0.5)
    return {"accuracy": curve[-1][1], "train_accuracy": _accuracy(reader, features, train), "curve": curve,
            "majority": float((test[:, 6] == majority).float().mean()), "pairs": len(pairs),
            "train_pairs": len(train), "steps": steps}


def relation_probes(encoder: nn.Module, data_dir: str | Path, split: str = "train", images: int | None = 2000,
                    steps: int = 3000, seed: int = 0, shuffle: bool = False,
                    positions: tuple[bool, ...] = (False, True)) -> dict[bool, dict[str, Any]]:
    """`fit_relation` on the encoder's patch tokens of `images` images of `split`, once per entry of
    `positions` (False: the features, True: with one-hot positions); the features are computed once."""
    scenes = read_scenes(data_dir, split, images)
    pairs, colors, shapes = relation_pairs(scenes)
    if len(pairs) == 0:
        raise ValueError(f"no two objects of the {len(scenes)} {split!r} images lie apart on an axis; "
                         "the relation probe needs scenes with two or more objects")
    was_training = encoder.training
    encoder.eval()
    features = patch_features(encoder, data_dir, scenes)  # (I, N, D)
    encoder.train(was_training)
    reports = {}
    for position in positions:
        tokens = with_position(features, tuple(encoder.grid)) if position else features
        report = fit_relation(tokens, pairs, len(colors), len(shapes), steps=steps, seed=seed, shuffle=shuffle)
        reports[position] = report | {"images": len(scenes), "split": split, "position": position}
    return reports


def relation_probe(encoder: nn.Module, data_dir: str | Path, split: str = "train", images: int | None = 2000,
                   steps: int = 3000, seed: int = 0, position: bool = False, shuffle: bool = False) -> dict[str, Any]:
    """One run of `relation_probes` (see the module docstring)."""
    return relation_probes(encoder, data_dir, split, images, steps, seed, shuffle, positions=(position,))[position]
