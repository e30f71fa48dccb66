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

Value = str | int | float | bool | None


class SpecError(ValueError):
    """A spec or spec id that cannot be used; the message names the value and the fix."""


def _format_value(v: Value) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _parse_value(text: str) -> Value:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _coerce(owner: str, key: str, value: Value, default: Value) -> Value:
    """Check `value` against the type of the field's default (ints may widen to floats)."""
    if value is None and isinstance(default, str):
        return "none"  # a string switch whose value is the word "none"
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SpecError(f"{owner}: {key}={value!r} must be true or false")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, type(default)) or isinstance(value, bool):
        raise SpecError(f"{owner}: {key}={value!r} must be a {type(default).__name__}")
    return value


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


@dataclass(frozen=True)
class ComponentSpec:
    """Base of the component specs: a registry name, an optional variant, typed switches."""

    name: str
    registry: ClassVar[Registry | None] = None
    none_allowed: ClassVar[bool] = False  # "none" means: no such component

    @property
    def id(self) -> str:
        head = self.name
        if getattr(self, "variant", ""):
            head += f":{self.variant}"
        opts = [
            f"{f.name}={_format_value(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if f.name not in ("name", "variant", "options") and getattr(self, f.name) != f.default
        ]
        opts += [f"{k}={_format_value(v)}" for k, v in getattr(self, "options", ())]
        return head + (f"({','.join(opts)})" if opts else "")

    @classmethod
    def parse(cls, text: str) -> ComponentSpec:
        text = text.strip()
        opts_text = ""
        if text.endswith(")") and "(" in text:
            text, opts_text = text[:-1].split("(", 1)
        name, _, variant = text.partition(":")
        if not name:
            raise SpecError(f"empty {cls.__name__} name in {text!r}")
        kwargs: dict[str, Any] = {"name": name}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if variant:
            if "variant" not in fields:
                raise SpecError(f"{cls.__name__} {name!r} takes no ':variant' (got {variant!r})")
            kwargs["variant"] = variant
        extra: list[tuple[str, Value]] = []
        for item in filter(None, (s.strip() for s in opts_text.split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise SpecError(f"option {item!r} in {cls.__name__} {name!r} must look like key=value")
            if key in fields and key not in ("name", "variant", "options"):
                kwargs[key] = _parse_value(val)
            elif "options" in fields:
                extra.append((key, _parse_value(val)))
            else:
                valid = [k for k in fields if k not in ("name", "variant")]
                raise SpecError(f"{cls.__name__} has no option {key!r}; valid: {', '.join(valid)}")
        if extra:
            kwargs["options"] = tuple(sorted(extra))
        return cls(**kwargs)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("name", "variant", "options"):
                value = _coerce(type(self).__name__, f.name, getattr(self, f.name), f.default)
                object.__setattr__(self, f.name, value)

    def validate(self) -> None:
        """Check that the named component is registered (imports its module)."""
        if self.registry is None or (self.none_allowed and self.name == "none"):
            return
        try:
            self.registry.get(self.name)
        except KeyError as err:
            raise SpecError(str(err)) from None

    def option(self, key: str, default: Value = None) -> Value:
        return dict(getattr(self, "options", ())).get(key, default)


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
    max_tokens: int | None = None  # visual-token budget per image; None = the patch count
    min_one_patch: bool = False  # a mask covering no patch keeps its best-covered patch
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
        return self.fusion.name != "patches"

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


# the named variants live in og/presets.py; imported last because they are built from the classes above
from og.presets import PRESETS, preset  # noqa: E402

__all__ = ["PARTS", "PRESETS", "ComponentSpec", "EncoderSpec", "FusionSpec", "LLMSpec", "ModelSpec", "PositionSpec",
           "ProjectorSpec", "SegmenterSpec", "SpecError", "preset"]
