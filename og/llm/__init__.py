"""Language models (LLMS): `hf` (any transformers causal LM) and `tiny-llama`, plus the LoRA
target helper. Importing this package registers them."""

from og.llm.hf import HFCausalLM, TinyLlama, config_from_dict, grow_vocab, llm_config_dict
from og.llm.lora import lora_target_modules

__all__ = ["HFCausalLM", "TinyLlama", "config_from_dict", "grow_vocab", "llm_config_dict", "lora_target_modules"]
