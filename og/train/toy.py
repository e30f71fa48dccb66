"""A small LLaVA-format dataset written from scratch: for tests, benchmarks and smoke runs.

`write_toy_llava(out_dir, n_images)` draws PNG images of coloured boxes on a plain background
(PIL), writes their exact masks (one per box, what is visible of it) into a `MaskStore`, and
two LLaVA-format files: `captions.jsonl` (stage 1: `<image>` -> "a red box left of a blue box")
and `instruct.json` (stage 2: questions about colours and positions, multi-turn, plus a few
text-only samples). Everything is seeded; the same call writes the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from og.masks.masks import Masks

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
BACKGROUNDS = ((235, 235, 235), (60, 60, 60), (200, 180, 150))
STORE_SPEC = "given"
IMAGE_DIR = "images"


@dataclass(frozen=True)
class ToyData:
    """Paths of a written toy dataset."""

    root: Path
    captions: Path  # stage 1, JSONL
    instruct: Path  # stage 2, JSON list
    image_root: Path
    store: Path  # MaskStore directory

    def texts(self) -> list[str]:
        """Every conversation text (to train a word-level tokenizer on)."""
        out = []
        for path in (self.captions, self.instruct):
            raw = path.read_text()
            records = [json.loads(line) for line in raw.splitlines()] if path.suffix == ".jsonl" else json.loads(raw)
            out += [t["value"].replace("<image>", " ") for r in records for t in r["conversations"]]
        return out


def draw_scene(rng: np.random.Generator, height: int, width: int) -> tuple[Image.Image, Masks, list[tuple]]:
    """An image of 1-3 boxes, their visible masks, and (colour, x-centre) of each box."""
    image = Image.new("RGB", (width, height), BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    draw = ImageDraw.Draw(image)
    owner = np.full((height, width), -1)  # which box each pixel shows
    names = list(rng.choice(list(COLORS), size=int(rng.integers(1, 4)), replace=False))
    boxes = []
    for i, name in enumerate(names):
        bw, bh = int(rng.integers(width // 5, width // 2)), int(rng.integers(height // 5, height // 2))
        x0, y0 = int(rng.integers(0, width - bw)), int(rng.integers(0, height - bh))
        draw.rectangle((x0, y0, x0 + bw - 1, y0 + bh - 1), fill=COLORS[name])
        owner[y0:y0 + bh, x0:x0 + bw] = i
        boxes.append((str(name), x0 + bw / 2))
    data = np.stack([owner == i for i in range(len(names))])  # (M, H, W)
    keep = data.reshape(len(names), -1).any(1)
    visible = [b for b, k in zip(boxes, keep, strict=True) if k]
    return image, Masks(data[keep], np.ones(int(keep.sum()), np.float32)), visible


def _caption(boxes: list[tuple]) -> str:
    order = [c for c, _ in sorted(boxes, key=lambda b: b[1])]
    if len(order) == 1:
        return f"a {order[0]} box ."
    return " ".join(f"a {c} box" + (" left of" if i < len(order) - 1 else " .") for i, c in enumerate(order))


def _questions(rng: np.random.Generator, boxes: list[tuple]) -> list[tuple[str, str]]:
    order = [c for c, _ in sorted(boxes, key=lambda b: b[1])]
    qa = [("how many boxes are there ?", str(len(order))), ("what color is the leftmost box ?", order[0])]
    if len(order) > 1:
        qa.append(("what color is the rightmost box ?", order[-1]))
    rng.shuffle(qa)
    return qa[: int(rng.integers(1, len(qa) + 1))]


def write_toy_llava(out_dir: str | Path, n_images: int = 8, size: tuple[int, int] = (48, 64), seed: int = 0,
                    n_text_only: int = 2) -> ToyData:
    """Write images, masks and both LLaVA-format files under `out_dir`."""
    from og.masks.store import MaskStore

    root = Path(out_dir)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    captions, instruct = [], []
    with MaskStore.writer(root / "masks", STORE_SPEC) as writer:
        for i in range(n_images):
            image, masks, boxes = draw_scene(rng, *size)
            rel = f"{IMAGE_DIR}/{i:04d}.png"
            image.save(root / rel)
            writer.add(rel, masks, size=(image.height, image.width))
            captions.append({"id": f"cap{i}", "image": rel, "conversations": [
                {"from": "human", "value": "<image>\n"}, {"from": "gpt", "value": _caption(boxes)}]})
            turns = []
            for j, (q, a) in enumerate(_questions(rng, boxes)):
                turns += [{"from": "human", "value": ("<image>\n" if j == 0 else "") + q}, {"from": "gpt", "value": a}]
            instruct.append({"id": f"qa{i}", "image": rel, "conversations": turns})
    for i in range(n_text_only):
        a, b = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        instruct.append({"id": f"text{i}", "conversations": [
            {"from": "human", "value": f"what is {a} plus {b} ?"}, {"from": "gpt", "value": str(a + b)}]})
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in captions))
    (root / "instruct.json").write_text(json.dumps(instruct, indent=1))
    return ToyData(root, root / "captions.jsonl", root / "instruct.json", root, root / "masks")
