"""Feature-layer indices, counted like `transformers`' `hidden_states` in every family.

`hidden_states` has n_blocks + 1 entries: index 0 is the embedding output, index i >= 1 the
output of block i - 1, so -1 is the last block's output and -2 (LLaVA's choice) the one
before. Block-based libraries (open_clip, timm) take 0-based block indices instead.
"""

from __future__ import annotations

from og.spec import EncoderSpec, SpecError


def check_layer(spec: EncoderSpec, n_blocks: int, allow_embeddings: bool = False) -> None:
    """Raise a SpecError when `spec.layer` is outside the model's hidden states."""
    low = -n_blocks - 1 if allow_embeddings else -n_blocks
    high = n_blocks
    zero_ok = allow_embeddings
    if not low <= spec.layer <= high or (spec.layer == 0 and not zero_ok):
        valid = f"{low}..{high}" if zero_ok else f"{low}..-1 or 1..{high}"
        raise SpecError(
            f"encoder {spec.id}: layer={spec.layer} is outside this {n_blocks}-block model; "
            f"use {valid} (counted like transformers hidden_states, -1 = last block)"
        )


def block_index(spec: EncoderSpec, n_blocks: int) -> int:
    """The 0-based block whose output is `hidden_states[spec.layer]` (embeddings not allowed)."""
    check_layer(spec, n_blocks, allow_embeddings=False)
    return spec.layer + n_blocks if spec.layer < 0 else spec.layer - 1
