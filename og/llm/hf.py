"""Causal language models from `transformers` (LLMS): `hf` and `tiny-llama`.

`hf` is any `AutoModelForCausalLM`: from a local checkpoint directory, or random weights from a
saved config (a `config.to_dict()` or a `PretrainedConfig`, how a saved og model rebuilds its
LLM before loading its own weights). `tiny-llama` is a small random `LlamaForCausalLM` for tests
and the quickstart; its vocabulary size comes from the caller's tokenizer.

`vocab_size` (the tokenizer's length) grows the token embeddings when the model has fewer rows
(e.g. after adding `<image>`); a model with more rows (padded vocabularies) is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PretrainedConfig, PreTrainedModel

from og.registry import LLMS
from og.spec import LLMSpec

ConfigLike = dict[str, Any] | PretrainedConfig
Dtype = torch.dtype | str | None


def config_from_dict(config: ConfigLike) -> PretrainedConfig:
    """A transformers config from `llm_config_dict(model)` (or a config object, returned as is)."""
    if isinstance(config, PretrainedConfig):
        return config
    if "model_type" not in config:
        raise ValueError(f"LLM config {sorted(config)[:5]}... has no 'model_type'; save it with "
                         "llm_config_dict(model) (model.config.to_dict())")
    data = dict(config)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def llm_config_dict(model: PreTrainedModel) -> dict[str, Any]:
    """What `from_spec(spec, config=...)` needs to rebuild the LLM's structure (weights aside)."""
    return model.config.to_dict()


def grow_vocab(model: PreTrainedModel, vocab_size: int | None) -> PreTrainedModel:
    """Resize the token embeddings up to `vocab_size` rows; never shrink."""
    if vocab_size is not None and vocab_size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(vocab_size)
    return model


@LLMS.register("hf")
class HFCausalLM:
    """Any transformers AutoModelForCausalLM, from a local path or a saved config."""

    @classmethod
    def make_config(cls, spec: LLMSpec, config: ConfigLike | None, vocab_size: int | None) -> PretrainedConfig:
        if config is None or (isinstance(config, dict) and "model_type" not in config):
            raise ValueError(f"llm {spec.id!r} needs a local checkpoint path (llm_path=...) or a saved config; "
                             "for a small random model use tiny-llama")
        return config_from_dict(config)

    @classmethod
    def from_spec(cls, spec: LLMSpec, path: str | None = None, config: ConfigLike | None = None,
                  vocab_size: int | None = None, dtype: Dtype = None) -> PreTrainedModel:
        """From `path` (dtype defaults to the checkpoint's own), else random from `config`."""
        if path is not None:
            if not Path(path, "config.json").is_file():
                raise FileNotFoundError(f"LLM path {path!r} has no config.json; give a local transformers "
                                        "causal-LM checkpoint directory")
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if dtype is not None else "auto")
        else:
            kwargs = {"dtype": dtype} if dtype is not None else {}
            model = AutoModelForCausalLM.from_config(cls.make_config(spec, config, vocab_size), **kwargs)
        return grow_vocab(model, vocab_size)


@LLMS.register("tiny-llama")
class TinyLlama(HFCausalLM):
    """A small random LlamaForCausalLM (hidden 64, 2 layers, 4 heads, 2 kv heads) for tests."""

    defaults: ClassVar[dict[str, Any]] = dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=2048,
    )

    @classmethod
    def make_config(cls, spec: LLMSpec, config: ConfigLike | None, vocab_size: int | None) -> PretrainedConfig:
        if isinstance(config, PretrainedConfig):
            return config
        data = {**cls.defaults, **({"vocab_size": vocab_size} if vocab_size else {}), **(config or {})}
        if "vocab_size" not in data:
            raise ValueError("tiny-llama needs vocab_size (the tokenizer's length) or a config holding it")
        if data.get("model_type", "llama") != "llama":
            raise ValueError(f"tiny-llama builds a llama model; its config has model_type {data['model_type']!r}")
        return LlamaConfig.from_dict(data)
