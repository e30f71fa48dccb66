"""og.segmenters: `image -> Masks` components registered in SEGMENTERS.

Importing this package registers every family (sam2 and sam import their libraries only
when built). `build_segmenter("slic(n_segments=50)")` parses a spec id and builds it;
`canonical_id(spec)` is the id it records, computed without building it.
"""

from __future__ import annotations

from og.segmenters import given, grid, random_blobs, sam, sam2, slic, whole  # noqa: F401 - registration
from og.segmenters.base import Segmenter, as_rgb_array


def build_segmenter(spec: str | object, path: str | None = None, device: str | None = None) -> Segmenter:
    """A segmenter from a SegmenterSpec or its id (`sam2:2.1-large(points_per_batch=64)`)."""
    from og.registry import SEGMENTERS
    from og.spec import SegmenterSpec

    spec = SegmenterSpec.parse(spec) if isinstance(spec, str) else spec
    if not isinstance(spec, SegmenterSpec) or spec.name == "none":
        raise ValueError(f"segmenter {spec!r}: give a segmenter spec such as 'slic' or 'sam2:2.1-large'")
    return SEGMENTERS.get(spec.name).from_spec(spec, path=path, device=device)


def canonical_id(spec: str | object) -> str:
    """The id a segmenter built from `spec` records (e.g. in a MaskStore): `sam2` and
    `sam2:2.1-large(points_per_side=32)` both give `sam2:2.1-large`. Builds nothing."""
    from og.registry import SEGMENTERS
    from og.spec import SegmenterSpec

    spec = SegmenterSpec.parse(spec) if isinstance(spec, str) else spec
    if not isinstance(spec, SegmenterSpec) or spec.name == "none":
        return getattr(spec, "id", str(spec))
    return SEGMENTERS.get(spec.name).canonical(spec).id


__all__ = ["Segmenter", "as_rgb_array", "build_segmenter", "canonical_id"]
