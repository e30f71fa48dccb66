"""`build_store`: segment many images into a MaskStore, resumable, split across processes.

Images are loaded `prefetch` ahead in a thread pool while the segmenter works. An image that
cannot be loaded, or that the segmenter fails on, is recorded as a failure (key, reason) and
the run continues; 10 segmenter failures in a row with no success abort the run (the cause is
then the segmenter, not the images).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from og.masks.masks import Masks
from og.masks.writer import MaskStoreWriter, part_of, resolve_part

ImageLoader = Callable[[], Image.Image | np.ndarray]
MAX_SEGMENTER_FAILURES_IN_A_ROW = 10


@dataclass
class BuildSummary:
    """What one `build_store` call did (this part only)."""

    part: tuple[int, int]
    todo: int = 0  # images of this part not yet in the store when the run started
    written: int = 0
    failed: int = 0
    skipped: int = 0  # images of this part already in the store
    masks: int = 0
    seconds: float = 0.0
    rebuilt: list[str] = field(default_factory=list)  # corrupt shards moved aside
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return (self.written + self.failed) / self.seconds if self.seconds else 0.0


def load_image(path: str | Path) -> Image.Image:
    """An RGB PIL image, fully decoded (so broken files fail here, not later)."""
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def _load(loader: ImageLoader) -> tuple[Any, str | None]:
    try:
        return loader(), None
    except Exception as err:  # noqa: BLE001 - any unreadable image is recorded, not fatal
        return None, f"unreadable image: {type(err).__name__}: {err}"


def build_store(out: str | Path, items: Iterable[tuple[str, ImageLoader]], segmenter: Any,
                shard: tuple[int, int] = (0, 1), flush_every: int = 256, prefetch: int = 4,
                progress: Callable[[str, int, BuildSummary], None] | None = None,
                on_start: Callable[[BuildSummary], None] | None = None,
                image_root: str | Path | None = None) -> BuildSummary:
    """Segment every `(key, loader)` of this work part not yet in the store at `out`.

    `segmenter(image, key=key) -> Masks`, with `.spec` (its SegmenterSpec) and optionally
    `.weights` (an id of its checkpoint). `progress(key, n_masks, summary)` is called per image
    (n_masks = -1 for a failure); `on_start(summary)` once the work left is known. `image_root`
    is recorded in a new store's header (for `og masks show`).
    """
    part, parts = resolve_part(shard)
    summary = BuildSummary(part=(part, parts))
    start = time.perf_counter()
    with MaskStoreWriter(out, segmenter.spec.id, (part, parts), flush_every=flush_every,
                         weights=getattr(segmenter, "weights", None),
                         image_root=str(image_root) if image_root is not None else None) as writer:
        summary.rebuilt = writer.rebuilt
        todo, seen = [], set()
        for key, loader in items:
            if key in seen or part_of(key, parts) != part:
                continue
            seen.add(key)
            if key in writer:
                summary.skipped += 1
            else:
                todo.append((key, loader))
        summary.todo = len(todo)
        if on_start:
            on_start(summary)
        in_a_row = 0
        with ThreadPoolExecutor(max_workers=max(1, min(prefetch, 8))) as pool:
            queue: deque[tuple[str, Future]] = deque()
            pending = iter(todo)
            for key, loader in pending:
                queue.append((key, pool.submit(_load, loader)))
                if len(queue) >= max(1, prefetch):
                    break
            while queue:
                key, future = queue.popleft()
                nxt = next(pending, None)
                if nxt is not None:
                    queue.append((nxt[0], pool.submit(_load, nxt[1])))
                image, error = future.result()
                masks = None
                if error is None:
                    try:
                        masks = segmenter(image, key=key)
                        in_a_row = 0
                    except Exception as err:  # noqa: BLE001 - recorded; systematic errors abort below
                        error = f"segmenter failed: {type(err).__name__}: {err}"
                        in_a_row += 1
                        if in_a_row >= MAX_SEGMENTER_FAILURES_IN_A_ROW and summary.written == 0:
                            raise RuntimeError(f"the segmenter failed on {in_a_row} images in a row "
                                               f"(last: {key!r}: {err}); fix the segmenter first") from err
                if error is not None:
                    writer.add_failure(key, error)
                    summary.failed += 1
                    summary.failures.append((key, error))
                else:
                    assert isinstance(masks, Masks)
                    h, w = (image.height, image.width) if isinstance(image, Image.Image) else image.shape[:2]
                    writer.add(key, masks, size=(h, w))
                    summary.written += 1
                    summary.masks += len(masks)
                summary.seconds = time.perf_counter() - start
                if progress:
                    progress(key, -1 if error else len(masks), summary)
    summary.seconds = time.perf_counter() - start
    return summary
