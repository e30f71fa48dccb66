"""`given`: masks that already exist, read by image key, from a MaskStore directory or from a
COCO annotation file (instances JSON: polygons, RLE or uncompressed RLE; results files with a
"score" per annotation work too).

The source is the option `path` (or the `path` argument of `from_spec`). A key is matched to a
COCO image by its `file_name`, else by the key's base name. The masks must be at the image's
size (a clear error otherwise). Annotation order does not matter: masks come out sorted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import KnobSegmenter, Segmenter
from og.spec import SegmenterSpec


class CocoMasks:
    """key -> Masks from a COCO annotation file."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise ValueError(f"{path} is not a COCO annotation file (needs 'images' and 'annotations')")
        self.images = {img["file_name"]: img for img in data["images"]}
        self.by_base = {Path(name).name: img for name, img in self.images.items()}
        self.anns: dict[Any, list[dict]] = {}
        for ann in data["annotations"]:
            self.anns.setdefault(ann["image_id"], []).append(ann)
        self.path = path

    def get(self, key: str) -> Masks:
        img = self.images.get(key) or self.by_base.get(Path(key).name)
        if img is None:
            raise KeyError(f"image {key!r} is not in {self.path} (matched by file_name, then base name)")
        anns = [a for a in self.anns.get(img["id"], []) if a.get("segmentation")]
        scores = np.asarray([a.get("score", 1.0) for a in anns], np.float32)
        return Masks.from_coco([a["segmentation"] for a in anns], img["height"], img["width"], scores)


@SEGMENTERS.register("given")
class GivenSegmenter(KnobSegmenter):
    """Masks read by image key from a MaskStore or COCO annotations (option path)."""

    knobs = {"path": None}

    @classmethod
    def canonical(cls, spec: SegmenterSpec) -> SegmenterSpec:
        """The variant is a free label naming where the masks come from (`given:coco-gt`,
        `given:shapes-oracle`), kept in the id so stores of different origins never mix."""
        options = super().canonical(SegmenterSpec(spec.name, "", spec.options)).options
        return SegmenterSpec(spec.name, spec.variant, options)

    def __init__(self, spec: SegmenterSpec) -> None:
        super().__init__(spec)
        path = self.opts["path"]
        if not path:
            raise ValueError("segmenter 'given' needs a source: given(path=STORE_DIR) or given(path=coco.json)")
        path = Path(str(path))
        if path.is_dir():
            from og.masks.store import MaskStore

            self.source: Any = MaskStore(path)
        elif path.is_file():
            self.source = CocoMasks(path)
        else:
            raise FileNotFoundError(f"given(path={path}): no such MaskStore directory or COCO json")

    @classmethod
    def from_spec(cls, spec: SegmenterSpec, path: str | None = None, device: str | None = None,
                  **kwargs: Any) -> Segmenter:
        if path is not None and spec.option("path") is None:
            spec = SegmenterSpec(spec.name, spec.variant, (*spec.options, ("path", str(path))))
        return cls(spec)

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        if not key:
            raise ValueError("segmenter 'given' reads masks by image key; call segmenter(image, key=...)")
        masks = self.source.get(key)
        masks.check_size(rgb.shape[0], rgb.shape[1], key)
        return masks
