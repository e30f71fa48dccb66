"""`OGLlavaProcessor`: text + image (+ masks) -> model inputs, on the CPU (data-loader side).

Per image: masks come as given, or from the mask source (a `MaskStore` read by key, or a
segmenter run on the image); the image goes through `ImageTransform`, and the masks straight
to their coverage of the encoder's patch grid through the same geometry composed with the
patching (`og.fusion.coverage.PatchCoverage`: stored masks are integrated over their RLE runs,
never decoded; `raster1d` takes the reference path of resampled pixel masks), and the fusion
plans the image's token layout (`og.fusion.plan_layout`). The `<image>` marker of
the text is expanded to exactly `len(layout)` placeholder tokens, so placeholders and visual
tokens always agree. Batches are padded on the left for generation (right for training).

Masks missing from a store (`on_missing_masks`): "error" raises naming the key; "whole" uses
one mask covering the whole image; "skip" uses no masks, so the fusion's no-mask fallback
applies (the global view plus every patch as one group). Both fallbacks are counted in
`processor.missing_masks`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, BatchFeature, PreTrainedTokenizerBase

from og.fusion import PackedLayout, TokenLayout, plan_layout
from og.fusion.coverage import PatchCoverage
from og.masks.geometry import ImageTransform
from og.masks.masks import Masks
from og.masks.rle import StoredMasks
from og.model import chat
from og.model.configuration import OGLlavaConfig
from og.registry import FUSIONS, SEGMENTERS
from og.segmenters.base import Segmenter
from og.spec import FusionSpec, SegmenterSpec

IMAGE_TOKEN = chat.IMAGE_TOKEN
ON_MISSING = ("error", "whole", "skip")
SETTINGS_FILE = "og_processor.json"


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, image_token: str = IMAGE_TOKEN) -> PreTrainedTokenizerBase:
    """Add the image placeholder as a special token if absent; give the tokenizer a pad token."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # padding is masked out everywhere
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return tokenizer


def _rgb(image: Image.Image | np.ndarray) -> Image.Image:
    return image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)).convert("RGB")


class OGLlavaProcessor:
    """Tokenizer, image transform, fusion layout planning and an optional mask source."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, transform: ImageTransform, fusion: FusionSpec,
                 grid: tuple[int, int], chat_template: str = "llama3", mask_source: Any = None,
                 on_missing_masks: str = "error", image_token: str = IMAGE_TOKEN) -> None:
        if on_missing_masks not in ON_MISSING:
            raise ValueError(f"on_missing_masks={on_missing_masks!r}; use one of {', '.join(ON_MISSING)}")
        if chat_template not in chat.template_names():
            raise ValueError(f"unknown chat template {chat_template!r}; use one of {', '.join(chat.template_names())}")
        self.image_token = image_token
        self.tokenizer = prepare_tokenizer(tokenizer, image_token)
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(image_token))
        self.transform = transform
        self.fusion = fusion
        self.grid = (int(grid[0]), int(grid[1]))
        self._coverage = PatchCoverage(transform, self.grid)
        self.chat_template = chat_template
        self.mask_source = mask_source
        self.on_missing_masks = on_missing_masks
        self.missing_masks: Counter[str] = Counter()  # fallbacks taken: {"whole": n, "skip": n}

    @property
    def coverage(self) -> PatchCoverage:
        """Masks at image size -> coverage (M, h, w) through this processor's transform and grid."""
        if self._coverage.transform is not self.transform or self._coverage.grid != self.grid:
            self._coverage = PatchCoverage(self.transform, self.grid)
        return self._coverage

    @property
    def uses_masks(self) -> bool:
        return self.fusion.uses_masks

    # ---- masks and images ---------------------------------------------------------------------
    def masks_for(self, image: Image.Image | np.ndarray, key: str = "", stored: bool = False
                  ) -> Masks | StoredMasks | None:
        """The image's masks from the mask source (store by `key`, or the segmenter); `stored`:
        a store's masks as `StoredMasks` (not decoded: what `prepare_image` needs)."""
        if self.mask_source is None:
            raise ValueError(f"fusion {self.fusion.name!r} needs masks for {key or 'this image'!r}: pass masks=, "
                             "or give the processor a mask source (a MaskStore or a segmenter)")
        if isinstance(self.mask_source, Segmenter):
            return self.mask_source(image, key=key)
        try:
            if stored and hasattr(self.mask_source, "read"):
                return self.mask_source.read(key)
            return self.mask_source.get(key)
        except KeyError:
            if self.on_missing_masks == "error":
                raise
        self.missing_masks[self.on_missing_masks] += 1
        if self.on_missing_masks == "skip":
            return None
        return SEGMENTERS.get("whole").from_spec(SegmenterSpec("whole"))(image, key=key)

    def prepare_image(self, image: Image.Image | np.ndarray, masks: Masks | StoredMasks | None = None,
                      key: str = "", layout: TokenLayout | None = None) -> tuple[torch.Tensor, TokenLayout]:
        """Pixels (3, H, W) and the token layout of one image (masks at the image's own size);
        `key` names the image for a fusion that draws at random (see `image_key`); `layout`, the
        one `plan_stored` made from these masks, is used instead of planning again."""
        image = _rgb(image)
        if not self.uses_masks:
            masks = None
        pixels = self.transform.transform_image(image)  # (3, H, W)
        coverage = None
        if masks is not None:
            masks.check_size(image.height, image.width)
            if layout is not None:
                return pixels, layout
            coverage = self.coverage.for_downsampler(masks, self.fusion.downsampler)  # (M, h, w)
        scores = None if masks is None else masks.scores  # (M,) numpy
        return pixels, plan_layout(self.fusion, coverage, self.grid, scores, key=self.image_key(image, key))

    def plan_stored(self, stored: list[StoredMasks], keys: list[str]) -> list[TokenLayout]:
        """The layouts of several images from their stored masks alone (no pixels needed): one
        decode pass for all their strings, then coverage and plan per image. A data-loader worker
        does this once per batch (`LlavaDataset.__getitems__`): numpy's per-call cost is paid once
        and the coverage and planning code runs warm instead of between image decodes."""
        if not self.uses_masks:
            raise ValueError(f"fusion {self.fusion.name!r} uses no masks; there is nothing to plan from them")
        if FUSIONS.get(self.fusion.name).uses_key and not all(keys):
            raise ValueError(f"fusion {self.fusion.id!r} draws at random per image: give every image its key")
        coverages = self.coverage.for_stored(stored, self.fusion.downsampler)  # (M_i, h, w) each
        return [plan_layout(self.fusion, cov, self.grid, s.scores, key=k)
                for cov, s, k in zip(coverages, stored, keys, strict=True)]

    def image_key(self, image: Image.Image, key: str = "") -> str:
        """What a fusion that draws at random (`prune(by=random)`) seeds on: the image's key (its
        mask-store key), else a digest of its pixels, so an image draws the same everywhere."""
        if key or not FUSIONS.get(self.fusion.name).uses_key:
            return key
        return f"{hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()}@{image.width}x{image.height}"

    # ---- text ----------------------------------------------------------------------------------
    def apply_chat_template(self, conversation: list[Any], add_generation_prompt: bool = False) -> str:
        """Render a conversation (dicts with role/content, or (role, text) pairs) as one string."""
        turns = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m) for m in conversation]
        return chat.render_text(self.chat_template, turns, add_generation_prompt, **self.template_tokens())

    def prompt(self, question: str) -> str:
        """A single-turn prompt for generation."""
        return chat.prompt(self.chat_template, question, **self.template_tokens())

    def template_tokens(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {"bos": tok.bos_token or "", "eos": tok.eos_token or "", "tokenizer": tok}

    def _expand(self, ids: list[int], n_tokens: int | None, index: int) -> list[int]:
        """Replace the single `<image>` id by `n_tokens` of them (None: the text has no image)."""
        count = ids.count(self.image_token_id)
        expected = 0 if n_tokens is None else 1
        if count != expected:
            what = "has no image" if n_tokens is None else "has one image"
            raise ValueError(f"text {index} {what} but contains {count} {self.image_token!r} markers; "
                             f"put exactly {expected} in it")
        if n_tokens is None:
            return ids
        at = ids.index(self.image_token_id)
        return ids[:at] + [self.image_token_id] * n_tokens + ids[at + 1:]

    def __call__(self, texts: str | list[str], images: list[Any] | Any = None, masks: list[Masks | None] | None = None,
                 keys: list[str] | None = None, padding_side: str = "left", add_special_tokens: bool = False,
                 return_tensors: str = "pt") -> BatchFeature:
        """Batch of texts (each with one `<image>` per image) -> input_ids, attention_mask,
        pixel_values (N, 3, H, W), layout (PackedLayout of the N images), image_sizes (N, 2)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if images is None or isinstance(images, (Image.Image, np.ndarray)):
            images = [images] * (1 if images is not None else len(texts))
        if len(images) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(images)} images; give one image (or None) per text")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r}; use 'left' (generation) or 'right' (training)")
        for name, seq in (("masks", masks), ("keys", keys)):
            if seq is not None and len(seq) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(seq)} {name}; give one per text")
        pixels, layouts, sizes, rows = [], [], [], []
        for i, (text, image) in enumerate(zip(texts, images, strict=True)):
            n_tokens = None
            if image is not None:
                image = _rgb(image)
                m = masks[i] if masks is not None else (
                    self.masks_for(image, keys[i] if keys else "", stored=True) if self.uses_masks else None)
                px, lay = self.prepare_image(image, m, keys[i] if keys else "")
                pixels.append(px)
                layouts.append(lay)
                sizes.append((image.height, image.width))
                n_tokens = len(lay)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            bos = self.tokenizer.bos_token_id
            if add_special_tokens and bos is not None and ids[:1] != [bos]:
                ids = [bos, *ids]
            rows.append(self._expand(ids, n_tokens, i))
        data: dict[str, Any] = self._pad(rows, padding_side)
        if pixels:
            data["pixel_values"] = torch.stack(pixels)  # (N, 3, H, W)
            data["layout"] = PackedLayout.pack(layouts)
            data["image_sizes"] = torch.tensor(sizes, dtype=torch.long)  # (N, 2)
        return BatchFeature(data=data)

    def _pad(self, rows: list[list[int]], side: str) -> dict[str, torch.Tensor]:
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(rows), length), dtype=torch.long)  # (B, L)
        for i, row in enumerate(rows):
            span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def batch_decode(self, ids: Any, skip_special_tokens: bool = True, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def decode(self, ids: Any, skip_special_tokens: bool = True, **kwargs: Any) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)

    # ---- persistence ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        t = self.transform
        return {"image_size": list(t.image_size), "mean": list(t.mean), "std": list(t.std),
                "pad_to_square": t.pad_to_square, "fusion": self.fusion.id, "grid": list(self.grid),
                "chat_template": self.chat_template, "on_missing_masks": self.on_missing_masks,
                "image_token": self.image_token}

    def save_pretrained(self, path: str | Path) -> None:
        """The tokenizer and a small JSON of the processor settings (the mask source is not saved)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(path)
        (path / SETTINGS_FILE).write_text(json.dumps(self.settings(), indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path, mask_source: Any = None, **overrides: Any) -> OGLlavaProcessor:
        path = Path(path)
        file = path / SETTINGS_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{path} has no {SETTINGS_FILE}; is it a directory saved by og's save_pretrained?")
        s = {**json.loads(file.read_text()), **overrides}
        transform = ImageTransform(s["image_size"], s["mean"], s["std"], s["pad_to_square"])
        return cls(AutoTokenizer.from_pretrained(path), transform, FusionSpec.parse(s["fusion"]), tuple(s["grid"]),
                   chat_template=s["chat_template"], mask_source=mask_source,
                   on_missing_masks=s["on_missing_masks"], image_token=s["image_token"])

    def __repr__(self) -> str:
        return (f"OGLlavaProcessor(fusion={self.fusion.id!r}, grid={self.grid}, template={self.chat_template!r}, "
                f"image_token={self.image_token!r}, mask_source={type(self.mask_source).__name__})")


AutoProcessor.register(OGLlavaConfig, OGLlavaProcessor, exist_ok=True)
