"""`OGLlavaConfig`: the composite transformers config of an OG-LLaVA model.

It holds the whole variant (`spec`, a `ModelSpec` dict, so a checkpoint names every
component), the vision encoder's own `config_dict()` (`vision_config`), the language model's
config (`text_config`, a transformers config rebuilt through `AutoConfig.for_model`), the id of
the `<image>` placeholder token and the encoder's patch grid. Registered with `AutoConfig`.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from og.spec import ModelSpec


class OGLlavaConfig(PretrainedConfig):
    """Config of `OGLlavaForConditionalGeneration` (model_type "og_llava")."""

    model_type = "og_llava"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    spec: dict | None = None  # ModelSpec.to_dict()
    vision_config: dict | None = None  # the encoder's config_dict()
    text_config: dict | PretrainedConfig | None = None  # the LLM's transformers config
    image_token_id: int | None = None  # id of the "<image>" placeholder in the tokenizer
    grid: list[int] | None = None  # (h, w) patch grid of the encoder
    tie_word_embeddings: bool = False  # the LLM ties its own embeddings inside `language_model`

    def __post_init__(self, **kwargs: Any) -> None:
        if isinstance(self.spec, ModelSpec):
            self.spec = self.spec.to_dict()
        if self.grid is not None:
            self.grid = [int(g) for g in self.grid]
        super().__post_init__(**kwargs)

    @property
    def model_spec(self) -> ModelSpec:
        """The `ModelSpec` this model was built from."""
        if self.spec is None:
            raise ValueError("this OGLlavaConfig has no spec; build it with OGLlavaConfig(spec=ModelSpec...)")
        return ModelSpec.from_dict(self.spec)

    @property
    def vocab_size(self) -> int:
        return int(self.text_config.vocab_size)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)


AutoConfig.register("og_llava", OGLlavaConfig)
