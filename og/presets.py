"""Named variants: the paper's models (LLaVA-1.5, OG-LLaVA at 8B and 3B) and tiny ones for tests.

`ModelSpec.parse(name)` and `og.preset(name)` accept these names wherever a spec id is accepted.
"""

from __future__ import annotations

from og.spec import (
    PRESETS,
    EncoderSpec,
    FusionSpec,
    LLMSpec,
    ModelSpec,
    PositionSpec,
    ProjectorSpec,
    SegmenterSpec,
    SpecError,
)


def preset(name: str) -> ModelSpec:
    """A named variant; an unknown name lists the presets."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


_SAM2_OG = SegmenterSpec("sam2", "2.1-large")
PRESETS.update({
    "llava-1.5": ModelSpec(
        EncoderSpec("clip", "l336"), SegmenterSpec("none"), FusionSpec("patches"),
        PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("hf", "vicuna-7b"),
    ),
    "og-llava": ModelSpec(
        EncoderSpec("clip", "l336"), _SAM2_OG, FusionSpec("masktoken"),
        PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("hf", "llama3.1-8b-instruct"),
    ),
    "og-llava-3b": ModelSpec(
        EncoderSpec("clip", "l336"), _SAM2_OG, FusionSpec("masktoken"),
        PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("hf", "llama3.2-3b-instruct"),
    ),
    "llava-1.5-3b": ModelSpec(
        EncoderSpec("clip", "l336"), SegmenterSpec("none"), FusionSpec("patches"),
        PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("hf", "llama3.2-3b-instruct"),
    ),
    "tiny-llava": ModelSpec(
        EncoderSpec("clip", "tiny"), SegmenterSpec("none"), FusionSpec("patches"),
        PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("tiny-llama"),
    ),
    "tiny-og": ModelSpec(
        EncoderSpec("clip", "tiny"), SegmenterSpec("slic", options=(("n_segments", 16),)),
        FusionSpec("masktoken"), PositionSpec("none"), ProjectorSpec("mlp2x_gelu"), LLMSpec("tiny-llama"),
    ),
})
