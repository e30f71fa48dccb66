"""Frozen specs of every component and the `ModelSpec` that composes them into a variant.

A spec has a short id that round-trips::

    clip:l336+sam2:2.1-large+masktoken+none+mlp2x_gelu+hf:llama3.2-3b
    clip:tiny+slic(n_segments=16)+masktoken(filler=true,threshold=0.3)+segment+mlp2x_gelu+tiny-llama

Each part is ``name[:variant][(key=value,...)]``; only non-default fields are written.
The parts are, in order: encoder, segmenter, fusion, position, projector, llm.
Ablations are `dataclasses.replace(spec, fusion=replace(spec.fusion, name="maskpool"))`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from og.registry import ENCODERS, FUSIONS, LLMS, POSITIONS, PROJECTORS, SEGMENTERS, Registry
from og.spec_base import ComponentSpec, SpecError, Value, coerce_value, format_value, parse_value, split_top


@dataclass(frozen=True)
class EncoderSpec(ComponentSpec):
    """Vision encoder: registry name, variant (a named config or a model name), feature layer."""

    name: str = "clip"
    variant: str = "l336"
    layer: int = -2
    registry: ClassVar[Registry] = ENCODERS


@dataclass(frozen=True)
class SegmenterSpec(ComponentSpec):
    """Segmenter: registry name, variant (model size), and its own knobs as sorted options."""

    name: str = "none"
    variant: str = ""
    options: tuple[tuple[str, Value], ...] = ()
    registry: ClassVar[Registry] = SEGMENTERS
    none_allowed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(sorted((str(k), v) for k, v in self.options)))


GLOBAL_VIEWS = ("mean", "all", "none")
MASK_ORDERS = ("segmenter", "area", "raster")
PRUNE_BY = ("random", "norm", "cls")
ROI_CELLS = ("drop", "weight")
FUSION_OWN = {"k": "patchpool", "keep": "prune", "by": "prune", "r": "roialign", "cells": "roialign"}  # owner


@dataclass(frozen=True)
class FusionSpec(ComponentSpec):
    """How masks turn patch features into visual tokens; every published switch is here."""

    name: str = "masktoken"
    global_view: str = "mean"  # global token(s) first: mean of all patches, all patches, or none
    bom_token: bool = True  # a learned begin-of-mask token before each mask's patches
    filler: bool = False  # one more mask for the patches no mask covers
    threshold: float = 0.5  # patch belongs to a mask when its coverage >= threshold
    order: str = "segmenter"  # mask order: as the segmenter ranked them, by area, or raster
    downsampler: str = "area"  # mask -> patch grid: "area" (2-D) or "raster1d" (published)
    max_tokens: int | None = None  # visual tokens per image, everything included; None = unbounded (published)
    min_one_patch: bool = False  # a mask covering no patch keeps its best-covered patch
    k: int = 2  # patchpool: the patch grid average-pooled to k x k tokens
    keep: int = 64  # prune: patch tokens kept (all of them when the grid has fewer)
    by: str = "random"  # prune: random (seeded per image key) | norm (feature norm) | cls (CLS attention)
    r: int = 2  # roialign: each mask's box pooled to r x r cells
    cells: str = "drop"  # roialign: drop the cells a mask does not cover | weight every cell by coverage
    registry: ClassVar[Registry] = FUSIONS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.global_view not in GLOBAL_VIEWS:
            raise SpecError(f"fusion global_view={self.global_view!r}; use one of {GLOBAL_VIEWS}")
        if self.order not in MASK_ORDERS:
            raise SpecError(f"fusion order={self.order!r}; use one of {MASK_ORDERS}")
        if not 0.0 < self.threshold <= 1.0:
            raise SpecError(f"fusion threshold={self.threshold}; use a value in (0, 1]")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise SpecError(f"fusion max_tokens={self.max_tokens}; use a positive count or none")
        for key, allowed in (("by", PRUNE_BY), ("cells", ROI_CELLS)):
            if getattr(self, key) not in allowed:
                raise SpecError(f"fusion {key}={getattr(self, key)!r}; use one of {allowed}")
        for key in ("k", "keep", "r"):
            if getattr(self, key) < 1:
                raise SpecError(f"fusion {key}={getattr(self, key)}; use a positive count")
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        for key, owner in FUSION_OWN.items():
            if owner != self.name and getattr(self, key) != fields[key]:
                raise SpecError(f"fusion {self.name!r} takes no {key}={getattr(self, key)!r}; it is a switch of "
                                f"{owner!r}")

    @property
    def uses_masks(self) -> bool:
        """Whether the fusion reads masks (its class's `uses_masks`; `patches`, `patchpool`, `prune` do not)."""
        try:
            return bool(FUSIONS.get(self.name).uses_masks)
        except KeyError:  # not registered (checked by validate): only the built-in maskless name is known
            return self.name != "patches"


@dataclass(frozen=True)
class PositionSpec(ComponentSpec):
    """Position encoding of the visual tokens ("none" for none)."""

    name: str = "none"
    max_segments: int = 300  # size of the `segment` table (the published value)
    registry: ClassVar[Registry] = POSITIONS


@dataclass(frozen=True)
class ProjectorSpec(ComponentSpec):
    """Vision-to-language projector."""

    name: str = "mlp2x_gelu"
    registry: ClassVar[Registry] = PROJECTORS


@dataclass(frozen=True)
class LLMSpec(ComponentSpec):
    """Language model: backend name and a variant label (e.g. the checkpoint it came from)."""

    name: str = "hf"
    variant: str = ""
    registry: ClassVar[Registry] = LLMS


PARTS: tuple[tuple[str, type[ComponentSpec]], ...] = (
    ("encoder", EncoderSpec),
    ("segmenter", SegmenterSpec),
    ("fusion", FusionSpec),
    ("position", PositionSpec),
    ("projector", ProjectorSpec),
    ("llm", LLMSpec),
)


# Named variants: filled by og.presets (which imports this module, never the reverse).
PRESETS: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class ModelSpec:
    """A whole variant: encoder + segmenter + fusion + position + projector + llm."""

    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    segmenter: SegmenterSpec = field(default_factory=SegmenterSpec)
    fusion: FusionSpec = field(default_factory=FusionSpec)
    position: PositionSpec = field(default_factory=PositionSpec)
    projector: ProjectorSpec = field(default_factory=ProjectorSpec)
    llm: LLMSpec = field(default_factory=LLMSpec)

    @property
    def id(self) -> str:
        return "+".join(getattr(self, name).id for name, _ in PARTS)

    @property
    def uses_masks(self) -> bool:
        return self.fusion.uses_masks

    @classmethod
    def parse(cls, text: str, validate: bool = True) -> ModelSpec:
        """A spec from its id, or from a preset name."""
        if text in PRESETS:
            return PRESETS[text]
        parts = split_top(text, "+")
        if len(parts) != len(PARTS):
            raise SpecError(
                f"spec id {text!r} has {len(parts)} parts; expected {len(PARTS)} "
                f"({' + '.join(n for n, _ in PARTS)}) or a preset name: {', '.join(PRESETS)}"
            )
        spec = cls(**{name: kind.parse(p) for (name, kind), p in zip(PARTS, parts, strict=True)})
        if validate:
            spec.validate()
        return spec

    def validate(self) -> ModelSpec:
        for name, _ in PARTS:
            getattr(self, name).validate()
        if self.uses_masks and self.segmenter.name == "none" and self.fusion.name != "patches":
            pass  # masks may come from a store or annotations; checked where they are read
        return self

    def replace(self, **parts: Any) -> ModelSpec:
        """Swap parts: `spec.replace(fusion="maskpool")` or `spec.replace(fusion=FusionSpec(...))`."""
        kinds = dict(PARTS)
        for key, value in parts.items():
            if key not in kinds:
                raise SpecError(f"ModelSpec has no part {key!r}; parts: {', '.join(kinds)}")
            if isinstance(value, str):
                parts[key] = kinds[key].parse(value)
        return dataclasses.replace(self, **parts)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **{name: dataclasses.asdict(getattr(self, name)) for name, _ in PARTS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls.parse(data["id"], validate=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


__all__ = ["PARTS", "PRESETS", "ComponentSpec", "EncoderSpec", "FusionSpec", "LLMSpec", "ModelSpec", "PositionSpec",
           "ProjectorSpec", "SegmenterSpec", "SpecError", "Value", "coerce_value",
           "format_value", "parse_value", "split_top"]
