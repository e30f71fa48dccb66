"""`LlavaDataset`: LLaVA-format conversations as training samples for an OG-LLaVA model.

Per sample (in the DataLoader's workers): the image is decoded, its masks come from a
`MaskStore` (key = the image path relative to the image root; read as `StoredMasks`, never
decoded to pixels) or from a segmenter, and the processor puts image and masks through the
same geometry (the masks straight to patch coverage) and plans the visual-token layout. A
DataLoader fetching a batch calls `__getitems__`, which first reads the batch's store records
with one batched read per shard (`MaskStore.prefetch`).
The conversation is rendered with a chat template (`og.model.chat.render`) into segments
flagged "assistant output"; each is tokenized (`add_special_tokens=False`, the template holds
the begin-of-text token) and its `<image>` marker becomes as many image tokens as the layout
has. Labels are the assistant output only; everything else is IGNORE_INDEX (-100).

Bad input (counted, never silent):
- image file missing (checked when the dataset is built): the sample is left out, a warning
  names the first few; `strict=True` raises instead;
- image unreadable (found when loading): the next sample is used instead, an event
  `image_unreadable` is recorded; `strict=True` raises;
- masks missing from the store: fallback `whole` (one mask covering the whole image, what the
  `whole` segmenter gives), an event `masks_missing`; `strict=True` raises when the dataset is
  built (all missing keys are also counted and named there);
- longer than `max_length` (`og.data.collator.fit_length`): the end of the last turn is cut
  (`truncated`) or, when the cut would reach the image tokens or the last answer's start,
  the next sample is used instead (`skipped_too_long`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from og.data.collator import IGNORE_INDEX, fit_length
from og.data.llava import IMAGE_MARKER, Conversation, DataSource, mix
from og.masks.masks import Masks
from og.masks.rle import StoredMasks
from og.model.chat import render
from og.model.sources import open_store

log = logging.getLogger(__name__)
MAX_SUBSTITUTIONS = 16


class UnreadableImage(OSError):
    """An image file that exists but cannot be decoded."""


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


class LlavaDataset(Dataset):
    """Tokenized conversations with their image tensors and token layouts."""

    def __init__(self, data: list[str | DataSource] | list[Conversation], processor: Any,
                 template: str | None = None, image_root: str | Path | None = None, mask_store: Any = None,
                 segmenter: Any = None, max_length: int | None = None, strict: bool = False,
                 seed: int = 0, check_files: bool = True, cache_samples: bool = False) -> None:
        pairs = [(c, None) for c in data] if data and isinstance(data[0], Conversation) else mix(data, seed)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token_id = int(processor.image_token_id)
        self.template = template or processor.chat_template
        self.image_root = Path(image_root) if image_root is not None else None
        self.mask_store = open_store(mask_store) if mask_store is not None else None  # a path or a MaskStore
        self.segmenter = segmenter
        self.needs_masks = bool(processor.uses_masks)
        if self.needs_masks and mask_store is None and segmenter is None and processor.mask_source is None:
            raise ValueError(f"fusion {processor.fusion.name!r} needs masks: pass a mask store (--masks) or a "
                             "segmenter, or use fusion 'patches'")
        self.max_length = max_length
        self.strict = strict
        self.counts: dict[str, int] = {}
        self.samples = self._check(pairs, check_files)
        self._planned: dict[str, tuple[StoredMasks, Any]] = {}  # key -> (masks, layout) of the batch in hand
        # index -> the encoded sample: each sample is read, planned and tokenized once per run instead of
        # once per epoch (multi-epoch runs on small data; it holds every sample's pixels in memory)
        self._cache: dict[int, dict[str, Any]] | None = {} if cache_samples else None

    # -- building ---------------------------------------------------------------------------
    def _root(self, root: str | None) -> Path | None:
        return Path(root) if root is not None else self.image_root

    def _check(self, pairs: list[tuple[Conversation, str | None]], check_files: bool) -> list:
        samples, missing, no_masks = [], [], []
        for conv, root in pairs:
            if conv.image is not None:
                base = self._root(root)
                if base is None:
                    raise ValueError(f"sample {conv.id!r} has image {conv.image!r} but no image root; pass image_root")
                if check_files and not (base / conv.image).is_file():
                    missing.append(str(base / conv.image))
                    continue
                if self.needs_masks and self.mask_store is not None and self.key(conv) not in self.mask_store:
                    no_masks.append(self.key(conv))
            samples.append((conv, root))
        if missing:
            if self.strict:
                raise FileNotFoundError(f"{len(missing)} images do not exist: {_first(missing)}; fix the paths "
                                        "or --image-root, or drop --strict to skip them")
            log.warning("skipped %d samples whose image does not exist: %s", len(missing), _first(missing))
        if no_masks:
            if self.strict:
                raise KeyError(f"{len(no_masks)} images have no masks in the store: {_first(no_masks)}; "
                               "build them with `og masks build`, or drop --strict to use the `whole` fallback")
            log.warning("%d images have no masks in the store; they get one whole-image mask (fallback "
                        "'whole'): %s", len(no_masks), _first(no_masks))
        self.counts = {"samples": len(samples), "image_missing": len(missing), "masks_missing": len(no_masks)}
        if not samples:
            raise ValueError("no usable samples: every sample was skipped (see the warnings above)")
        return samples

    @staticmethod
    def key(conv: Conversation) -> str:
        """The MaskStore key of a sample's image: its path relative to the image root."""
        return Path(conv.image).as_posix()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def modality_lengths(self) -> list[int]:
        """Approximate lengths (words), positive for image samples, negative for text-only."""
        return [c.approx_length() if c.has_image else -c.approx_length() - 1 for c, _ in self.samples]

    # -- one sample ---------------------------------------------------------------------------
    def _masks(self, conv: Conversation, image: Image.Image, events: list) -> Masks | StoredMasks | None:
        if not self.needs_masks:
            return None
        key = self.key(conv)
        if self.mask_store is not None:
            if key in self.mask_store:
                read = getattr(self.mask_store, "read", self.mask_store.get)  # undecoded when the store can
                return read(key)
            events.append(("masks_missing", key))
            return Masks(np.ones((1, image.height, image.width), bool), np.ones(1, np.float32))  # 'whole'
        if self.segmenter is not None:
            return self.segmenter(image, key=key)
        return self.processor.masks_for(image, key, stored=True)

    def _load_image(self, conv: Conversation, root: str | None) -> Image.Image:
        path = self._root(root) / conv.image
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise UnreadableImage(f"{path}: {err}") from None

    def encode_text(self, conv: Conversation, n_image_tokens: int) -> tuple[list[int], list[int], int]:
        """(input_ids, labels, index of the last answer's first token) of a conversation."""
        tok = self.tokenizer
        segments = render(self.template, list(conv.turns), **self.processor.template_tokens())
        markers = sum(text.count(IMAGE_MARKER) for text, _ in segments)
        if markers != (1 if conv.has_image else 0):
            raise ValueError(f"sample {conv.id!r} ({conv.source}) renders with {markers} {IMAGE_MARKER} markers "
                             f"under template {self.template!r}; expected {int(conv.has_image)}")
        ids: list[int] = []
        labels: list[int] = []
        last_answer = 0
        for text, target in segments:
            if target:
                last_answer = len(ids)
            for j, piece in enumerate(text.split(IMAGE_MARKER)):
                if j:
                    ids += [self.image_token_id] * n_image_tokens
                    labels += [IGNORE_INDEX] * n_image_tokens
                if piece:
                    piece_ids = tok(piece, add_special_tokens=False)["input_ids"]
                    ids += piece_ids
                    labels += piece_ids if target else [IGNORE_INDEX] * len(piece_ids)
        return ids, labels, last_answer

    def encode(self, index: int) -> dict[str, Any]:
        """Sample `index` as tensors; raises `UnreadableImage` for an image that cannot be decoded.
        With `cache_samples`, made once and served again (fresh ids / labels / events each time; the
        pixels and the layout are shared and must not be changed in place)."""
        if self._cache is None:
            return self._encode(index)
        if index not in self._cache:
            self._cache[index] = self._encode(index)
        item = self._cache[index]
        return {**item, "input_ids": item["input_ids"].clone(), "labels": item["labels"].clone(),
                "events": list(item["events"])}

    def _encode(self, index: int) -> dict[str, Any]:
        conv, root = self.samples[index]
        events: list[tuple[str, str]] = []
        pixels = layout = size = None
        if conv.has_image:
            image = self._load_image(conv, root)
            size = (image.height, image.width)
            masks, planned = self._planned.get(self.key(conv), (None, None))
            if masks is None:
                masks = self._masks(conv, image, events)
            pixels, layout = self.processor.prepare_image(image, masks, key=self.key(conv), layout=planned)
        n_image = len(layout) if layout is not None else 0
        ids, labels, last_answer = self.encode_text(conv, n_image)
        image_end = ids.index(self.image_token_id) + n_image if n_image else 0
        return {
            "id": conv.id, "input_ids": torch.tensor(ids, dtype=torch.long),  # (L,)
            "labels": torch.tensor(labels, dtype=torch.long),  # (L,)
            "pixel_values": pixels, "layout": layout, "image_size": size,
            "image_key": str(self._root(root) / conv.image) if conv.has_image else None,  # the encoder cache's key
            "min_length": max(last_answer + 1, image_end), "events": events,
        }

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch (what a DataLoader asks for): the store records first, in one read per shard,
        then the batch's layouts from them in one pass (`processor.plan_stored`), then the samples."""
        todo = [i for i in indices if self._cache is None or i % len(self.samples) not in self._cache]
        if todo and self.needs_masks and hasattr(self.mask_store, "prefetch"):
            convs = (self.samples[i % len(self.samples)][0] for i in todo)
            keys = list(dict.fromkeys(self.key(c) for c in convs if c.has_image))
            self.mask_store.prefetch(keys)
            stored = {k: self.mask_store.read(k) for k in keys if k in self.mask_store}
            layouts = self.processor.plan_stored(list(stored.values()), list(stored))
            self._planned = {k: (s, lay) for (k, s), lay in zip(stored.items(), layouts, strict=True)}
        try:
            return [self[i] for i in indices]
        finally:
            self._planned = {}

    def __getitem__(self, index: int) -> dict[str, Any]:
        events: list[tuple[str, str]] = []
        for attempt in range(MAX_SUBSTITUTIONS):
            i = (index + attempt) % len(self.samples)
            try:
                item = self.encode(i)
            except UnreadableImage as err:
                if self.strict:
                    raise
                events.append(("image_unreadable", str(err)))
                continue
            item, event = fit_length(item, self.max_length)
            if event is not None:
                events.append(event)
            if item is not None:
                item["events"] = events + item["events"]
                return item
        raise RuntimeError(f"{MAX_SUBSTITUTIONS} samples in a row from index {index} could not be used: "
                           f"{_first([e[1] for e in events], 3)}")
