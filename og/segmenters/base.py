"""The segmenter contract: `segmenter(image) -> Masks` at the image's own size, deterministic.

Images are PIL images or uint8 numpy arrays (H, W, 3). Every segmenter returns its masks in
the canonical order of `Masks.sorted()` (score, then area, then position).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from og.masks.masks import Masks
from og.spec import SegmenterSpec, SpecError, Value, coerce_value, format_value


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image or an array (gray and RGBA are converted)."""
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"))  # a writable copy (torch warns on read-only arrays)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image array must be (H, W, 3); got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8)
    return arr


class Segmenter:
    """Base class; subclasses implement `segment(rgb uint8 (H, W, 3)) -> Masks`."""

    spec: SegmenterSpec

    @classmethod
    def from_spec(cls, spec: SegmenterSpec, path: str | None = None, device: str | None = None,
                  **kwargs: Any) -> Segmenter:
        raise NotImplementedError

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        raise NotImplementedError

    @classmethod
    def canonical(cls, spec: SegmenterSpec) -> SegmenterSpec:
        """The spec as this segmenter would record it (variant resolved, defaults dropped),
        without building anything: compare stores and model specs by `canonical(spec).id`."""
        return spec

    def __call__(self, image: Image.Image | np.ndarray, key: str = "") -> Masks:
        """`key` (the image's path or id) seeds per-image randomness where a segmenter has any."""
        return self.segment(as_rgb_array(image), key=key).sorted()


# --- knobs: every segmenter's options, checked against the ones it knows ---------------------------

KNOB_HELP = "pass them as SegmenterSpec options, e.g. slic(n_segments=50) or --option n_segments=50"


def resolve_knobs(spec: SegmenterSpec, knobs: dict[str, Value]) -> dict[str, Value]:
    """The spec's options over the segmenter's defaults; an unknown knob lists the valid ones."""
    given = dict(spec.options)
    unknown = sorted(set(given) - set(knobs))
    if unknown:
        valid = ", ".join(f"{k}={format_value(v)}" for k, v in knobs.items()) or "(none)"
        raise SpecError(f"segmenter {spec.name!r} has no option {', '.join(map(repr, unknown))}; "
                        f"valid options (defaults): {valid}")
    return {k: coerce_value(f"segmenter {spec.name!r}", k, given.get(k, d), d) for k, d in knobs.items()}


def canonical_spec(spec: SegmenterSpec, knobs: dict[str, Value], variant: str | None = None,
                   runtime: tuple[str, ...] = ()) -> SegmenterSpec:
    """The spec with its variant resolved and default-valued options dropped, so that equal
    configurations have equal ids (a MaskStore refuses to mix different ids). `runtime` knobs
    (speed only, same masks) are left out of the id too."""
    values = resolve_knobs(spec, knobs)
    options = tuple((k, v) for k, v in values.items() if v != knobs[k] and k not in runtime)
    return SegmenterSpec(spec.name, spec.variant if variant is None else variant, options)


class KnobSegmenter(Segmenter):
    """A segmenter whose behaviour is fully given by its spec (no weights): `knobs` are the
    options with their defaults; `__init__(spec)` sees them resolved in `self.opts`."""

    knobs: ClassVar[dict[str, Value]] = {}

    def __init__(self, spec: SegmenterSpec) -> None:
        self.spec = self.canonical(spec)
        self.opts = resolve_knobs(spec, self.knobs)
        self.weights: str | None = None

    @classmethod
    def canonical(cls, spec: SegmenterSpec) -> SegmenterSpec:
        if spec.variant:
            raise SpecError(f"segmenter {spec.name!r} has no variants (got {spec.variant!r}); "
                            f"its options are {', '.join(cls.knobs) or '(none)'}")
        return canonical_spec(spec, cls.knobs)

    @classmethod
    def from_spec(cls, spec: SegmenterSpec, path: str | None = None, device: str | None = None,
                  **kwargs: Any) -> Segmenter:
        if path is not None:
            raise ValueError(f"segmenter {spec.name!r} takes no checkpoint (got {path!r})")
        return cls(spec)
