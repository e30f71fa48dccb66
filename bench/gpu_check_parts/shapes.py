"""The model shapes the GPU check builds with random weights (no download): the published CLIP
ViT-L/14-336 (`clip:l336`, transformers CLIPVisionConfig), a Llama-3.2-3B- or Llama-3.1-8B-shaped
LLM (`hf` built from the config below), the mlp2x_gelu projector; `tiny` is the test-suite size
(`clip:tiny`, `tiny-llama`) for CPU runs.

`Setup.build(fusion)` returns `(model, processor)` seeded, so every fusion and every run starts
from the same weights; parameters are created on the target device (no CPU init of 3B weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import og
from og.data.tokenizer import train_tokenizer

_LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
_LLAMA3 = dict(model_type="llama", vocab_size=128256, num_key_value_heads=8, head_dim=128, hidden_act="silu",
               max_position_embeddings=131072, rms_norm_eps=1e-5, attention_bias=False, mlp_bias=False)
# published config.json values of meta-llama/Llama-3.2-3B-Instruct and Llama-3.1-8B-Instruct
LLM_CONFIGS: dict[str, dict[str, Any]] = {
    "3b": dict(_LLAMA3, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
               tie_word_embeddings=True, rope_parameters=dict(_LLAMA3_ROPE, factor=32.0)),
    "8b": dict(_LLAMA3, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               tie_word_embeddings=False, rope_parameters=dict(_LLAMA3_ROPE, factor=8.0)),
}
LLM_SPECS = {"3b": "hf:llama3.2-3b-instruct", "8b": "hf:llama3.1-8b-instruct", "tiny": "tiny-llama"}
ENCODER_SPECS = {"real": "clip:l336", "tiny": "clip:tiny"}
SPEC = "{encoder}+none+{fusion}+none+mlp2x_gelu+{llm}"  # masks are given per image: no segmenter
VOCAB_WORDS = 2000  # words of the word-level tokenizer the text is drawn from


def words(n: int = VOCAB_WORDS) -> list[str]:
    return [f"w{i}" for i in range(n)]


@dataclass
class Setup:
    """Which shapes, where, in which dtype; `build(fusion)` makes a fresh seeded model."""

    llm: str  # "3b", "8b" or "tiny"
    device: torch.device
    dtype: torch.dtype
    lora_r: int = 128
    seed: int = 0
    tokenizer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.llm not in LLM_SPECS:
            raise ValueError(f"--llm-config {self.llm!r}; use one of {', '.join(LLM_SPECS)}")
        if self.tokenizer is None:
            self.tokenizer = train_tokenizer([" ".join(words())])

    @property
    def tiny(self) -> bool:
        return self.llm == "tiny"

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16

    def spec(self, fusion: str) -> str:
        return SPEC.format(encoder=ENCODER_SPECS["tiny" if self.tiny else "real"], fusion=fusion,
                           llm=LLM_SPECS[self.llm])

    def describe(self) -> str:
        return f"{self.spec('<fusion>')} ({'tiny' if self.tiny else 'published shapes'}, random weights)"

    def geometry(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(image size, patch grid) of the encoder, read from a weightless (meta-device) build."""
        from og.registry import ENCODERS
        from og.spec import ModelSpec

        spec = ModelSpec.parse(self.spec("patches"), validate=False).encoder
        with torch.device("meta"):
            encoder = ENCODERS.get(spec.name).from_spec(spec)
        return tuple(encoder.image_size), tuple(encoder.grid)

    def build(self, fusion: str) -> tuple[Any, Any]:
        """(model, processor) with the same weights for the same seed, on `device` in `dtype`."""
        torch.manual_seed(self.seed)
        with torch.device(self.device):  # parameters are created there (a 3B init on the CPU takes minutes)
            return og.build(self.spec(fusion), tokenizer=self.tokenizer, chat_template="tokenizer",
                            llm_config=None if self.tiny else dict(LLM_CONFIGS[self.llm]),
                            device=self.device, dtype=self.dtype)


def free_memory() -> None:
    """Give cached accelerator memory back after a model is dropped (so the next peak is its own)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    """Peak allocated memory since the last reset (GB); None on the CPU (not measured)."""
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
