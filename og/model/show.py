"""What the LLM sees: the model's input image with every visual token drawn where it comes from.

Each token that has a patch position (a patch copy, or a pooled token at its mask's centroid
patch) gets that patch cell filled in the colour of its segment (0 = global view, 1..K = the
mask groups, colours of `og.viz`) and its index in the visual-token sequence written in the
cell. Tokens without a position (the global mean, begin-of-mask tokens) are listed under the
picture with their index.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from og.fusion.layout import BOM, GLOBAL_MEAN, KIND_NAMES
from og.viz import overlay_masks


def unnormalise(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Image.Image:
    """The processor's normalised (3, H, W) pixels back to an RGB image."""
    arr = pixels.detach().float().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return Image.fromarray((arr.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))  # (H, W, 3)


def segment_cells(layout: Any, size: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """bool (S, H, W): the patch cells of each segment's positioned tokens, and the segment ids."""
    (h, w), (height, width) = layout.grid, size
    segments = sorted({int(s) for s, r in zip(layout.segment.tolist(), layout.row.tolist(), strict=True) if r >= 0})
    cells = np.zeros((len(segments), height, width), dtype=bool)  # (S, H, W)
    ys = np.linspace(0, height, h + 1).round().astype(int)
    xs = np.linspace(0, width, w + 1).round().astype(int)
    index = {s: i for i, s in enumerate(segments)}
    for s, r, c in zip(layout.segment.tolist(), layout.row.tolist(), layout.col.tolist(), strict=True):
        if r >= 0:
            cells[index[s], ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = True
    return cells, segments


def draw_layout(image: Image.Image, layout: Any, min_side: int = 512) -> Image.Image:
    """The picture described in the module docstring; `image` is the model's input image."""
    scale = max(1, -(-min_side // min(image.size)))
    img = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    cells, _ = segment_cells(layout, (img.height, img.width))
    out = overlay_masks(img, cells, outlines=True, alpha=0.5) if len(cells) else img
    h, w = layout.grid
    cell_h, cell_w = img.height / h, img.width / w
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(out)
    per_cell: dict[tuple[int, int], list[str]] = {}
    unplaced = []
    for i, (kind, r, c, s) in enumerate(zip(layout.kind.tolist(), layout.row.tolist(), layout.col.tolist(),
                                            layout.segment.tolist(), strict=True)):
        if r >= 0:
            per_cell.setdefault((r, c), []).append(str(i))
        else:
            label = {GLOBAL_MEAN: "global mean", BOM: f"begin of mask {s}"}.get(kind, KIND_NAMES.get(kind, "?"))
            unplaced.append(f"{i}: {label}")
    for (r, c), labels in per_cell.items():
        draw.text(((c + 0.5) * cell_w, (r + 0.5) * cell_h), ",".join(labels), fill=(255, 255, 255), font=font,
                  anchor="mm", stroke_width=1, stroke_fill=(0, 0, 0))
    lines = [f"{len(layout)} visual tokens, in sequence order"]
    lines += textwrap.wrap("; ".join(unplaced), width=max(20, out.width // 6)) if unplaced else []
    strip = Image.new("RGB", (out.width, 14 * len(lines) + 6), (255, 255, 255))
    sd = ImageDraw.Draw(strip)
    for k, line in enumerate(lines):
        sd.text((4, 3 + 14 * k), line, fill=(0, 0, 0), font=font)
    canvas = Image.new("RGB", (out.width, out.height + strip.height), (255, 255, 255))
    canvas.paste(out, (0, 0))
    canvas.paste(strip, (0, out.height))
    return canvas
