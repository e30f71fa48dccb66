"""og.fusion: masks on the patch grid -> token layouts -> visual tokens, and position encodings.

Processor side (CPU): `downsample(masks, grid)` -> coverage (M, h, w); `plan_layout(spec,
coverage, grid, scores)` -> `TokenLayout`; `PackedLayout.pack(layouts)` for a batch.
Model side: `FUSIONS.get(name)(spec, dim, grid)(features, packed)` -> (ΣT, D) and
`POSITIONS.get(name)(spec, vision_dim, text_dim, grid)`.
"""

from og.fusion import layout, patchpool, plan, positions, prune, roialign, strategies  # noqa: F401  (registers the entries)
from og.fusion.downsample import AreaDownsampler, Raster1dDownsampler, downsample, member
from og.fusion.layout import KIND_NAMES, PackedLayout, TokenLayout
from og.fusion.plan import plan_layout, select_masks
from og.fusion.positions import PositionEncoding
from og.fusion.strategies import Fusion, MaskPoolFusion, MaskTokenFusion, PatchesFusion

__all__ = [
    "AreaDownsampler", "Fusion", "KIND_NAMES", "MaskPoolFusion", "MaskTokenFusion", "PackedLayout",
    "PatchesFusion", "PositionEncoding", "Raster1dDownsampler", "TokenLayout", "downsample", "member",
    "plan_layout", "select_masks",
]
