"""`OGLlavaForConditionalGeneration`: encoder -> fusion -> projector -> LLM, a transformers model.

Forward: patch features of the images (B, h*w, Dv) -> the fusion gathers them into the visual
tokens of every image's layout (ΣT, Dv) -> position encoding -> projector (ΣT, Dl) -> position
encoding -> `masked_scatter` into the text embeddings at the `<image>` placeholders (their
count must equal ΣT, the transformers-Llava check) -> the language model. Images and layouts
are used at the first generation step only; afterwards the KV cache holds them. With a
`grouped_positions` encoding (`grouped_rope`) the LLM's position ids come from the layout's
rope groups, and generation continues after the last group (see `og.model.positions`).

Submodules (names the training stages refer to): `encoder`, `fusion`, `position`,
`projector`, `language_model`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, GenerationMixin, PreTrainedModel
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.modeling_outputs import CausalLMOutputWithPast

from og.fusion.layout import PackedLayout
from og.model.configuration import OGLlavaConfig
from og.model.image_inputs import dummy_image, planned_layout
from og.model.positions import grouped_position_ids, text_position_ids
from og.registry import ENCODERS, FUSIONS, LLMS, POSITIONS, PROJECTORS

IGNORE_INDEX = -100
_IMAGE_INPUTS = ("pixel_values", "layout", "image_sizes")
VisionFeatures = tuple[torch.Tensor, dict[str, torch.Tensor]]  # the encoder's pass: (N, h*w, Dv), extras (N, ...)


class OGLlavaPreTrainedModel(PreTrainedModel):
    config_class = OGLlavaConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _skip_keys_device_placement = ["cache"]


class OGLlavaForConditionalGeneration(OGLlavaPreTrainedModel, GenerationMixin):
    """OG-LLaVA: object-guided visual tokens in a LLaVA-style model (any fusion, any causal LM)."""

    def __init__(self, config: OGLlavaConfig, encoder: nn.Module | None = None,
                 language_model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        spec = config.model_spec
        grid = tuple(config.grid)
        self.encoder = encoder if encoder is not None else ENCODERS.get(spec.encoder.name).from_spec(
            spec.encoder, config=config.vision_config)
        if tuple(self.encoder.grid) != grid:
            raise ValueError(f"encoder grid {tuple(self.encoder.grid)} != config grid {grid}")
        self.language_model = language_model if language_model is not None else LLMS.get(
            spec.llm.name).from_spec(spec.llm, config=config.text_config)
        config.text_config = self.language_model.config  # one shared object (resizing updates both)
        self.fusion = self._build_part("fusion")
        self.position = self._build_part("position")
        self.projector = self._build_part("projector")
        self._rope_delta: torch.Tensor | None = None  # (B, 1) grouped position minus text position
        if next(self.parameters()).device.type != "meta":  # components come initialised: keep their init
            for module in (self.encoder, self.fusion, self.position, self.projector, self.language_model):
                for sub in module.modules():
                    sub._is_hf_initialized = True
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Weights a checkpoint did not hold. The og components (fusion, position, projector) get
        their own constructors' values, which also restores their non-persistent buffers (e.g.
        the sincos table), which loading on the meta device leaves uninitialised."""
        super()._init_weights(module)
        name = next((n for n in ("fusion", "position", "projector") if getattr(self, n, None) is module), None)
        if name is None:
            return
        with torch.device("cpu"):
            fresh = self._build_part(name)
        values = dict(fresh.named_parameters())
        values.update(dict(fresh.named_buffers()))
        persistent = set(module.state_dict())
        for key, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if key in persistent and getattr(tensor, "_is_hf_initialized", False):
                continue  # loaded from the checkpoint
            tensor.copy_(values[key].to(tensor.device, tensor.dtype))

    def _build_part(self, name: str) -> nn.Module:
        """A fresh fusion / position / projector module from the config (random init)."""
        spec, grid = self.config.model_spec, tuple(self.config.grid)
        vision_dim, text_dim = int(self.encoder.dim), int(self.config.text_config.hidden_size)
        builders = {
            "fusion": lambda: FUSIONS.get(spec.fusion.name)(spec.fusion, vision_dim, grid),
            "position": lambda: POSITIONS.get(spec.position.name)(spec.position, vision_dim, text_dim, grid),
            "projector": lambda: PROJECTORS.get(spec.projector.name)(vision_dim, text_dim),
        }
        return builders[name]()

    # ---- plumbing transformers expects -------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func: Any = None,
                                    every_n_layers: int = 1) -> None:
        """Checkpointing lives in the language model (the encoder is frozen in every stage)."""
        kwargs = {"enable": enable, "every_n_layers": every_n_layers}
        if gradient_checkpointing_func is not None:
            kwargs["gradient_checkpointing_func"] = gradient_checkpointing_func
        self.language_model._set_gradient_checkpointing(**kwargs)

    @property
    def grouped_positions(self) -> bool:
        return bool(getattr(self.position, "grouped_positions", False))

    # ---- image side ----------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """The encoder's pass: (features (N, h*w, Dv), what else the fusion takes from it, per image).
        prune(by=cls) also takes the encoder's CLS attention (N, h*w), from the same pass."""
        if getattr(self.fusion, "needs_cls_attention", False):
            features, cls_attention = self.encoder.forward_with_cls_attention(pixel_values)
            return features, {"cls_attention": cls_attention}
        return self.encoder(pixel_values), {}  # (N, h*w, Dv)

    def get_image_features(self, pixel_values: torch.Tensor, layout: PackedLayout,
                           vision_features: VisionFeatures | None = None) -> torch.Tensor:
        """Visual tokens of every image in LLM space, image 0 first: (ΣT, Dl). `vision_features`:
        `encode_images(pixel_values)` when the caller already has it (a frozen encoder's cache,
        `og.train.feature_cache`); the encoder is then skipped."""
        n, copies = layout.batch_size, pixel_values.shape[0] // max(layout.batch_size, 1)
        if copies > 1:  # generate() repeats every image for beams / returned sequences
            unique = pixel_values[::copies]  # (N, 3, H, W)
            if torch.equal(unique.repeat_interleave(copies, 0), pixel_values):
                pixel_values = unique
        if pixel_values.shape[0] != n:
            raise ValueError(f"{pixel_values.shape[0]} images in pixel_values but {n} layouts; "
                             "give one layout per image")
        features, extra = vision_features if vision_features is not None else self.encode_images(pixel_values)
        if features.shape[0] != n:
            raise ValueError(f"vision_features hold {features.shape[0]} images but there are {n} layouts")
        layout = layout.to(features.device)
        tokens = self.fusion(features, layout, **extra)  # (ΣT, Dv)
        tokens = self.position(tokens, layout, "before")  # (ΣT, Dv) through forward: ZeRO-3 gathers its tables
        tokens = self.projector(tokens)  # (ΣT, Dl)
        tokens = self.position(tokens, layout, "after")  # (ΣT, Dl)
        if copies > 1 and pixel_values.shape[0] == n:
            tokens = torch.cat([t.repeat(copies, 1) for t in tokens.split(layout.lengths.tolist())])  # (k*ΣT, Dl)
        return tokens

    def _dummy_vision_pass(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """A text-only batch still runs the vision path (see `og.model.image_inputs.dummy_image`): 0."""
        pixels, layout = dummy_image(self.config.model_spec, tuple(self.config.grid), self.encoder.image_size,
                                     inputs_embeds.device)
        return self.get_image_features(pixels, layout)[:0].sum().to(inputs_embeds.dtype)  # () zero, in the graph

    def image_token_mask(self, input_ids: torch.Tensor, n_features: int) -> torch.Tensor:
        """(B, L) placeholder mask; its count must equal the number of visual tokens."""
        mask = input_ids == self.config.image_token_id  # (B, L)
        n_tokens = int(mask.sum())
        if n_tokens != n_features:
            raise ValueError(f"Image features and image tokens do not match: tokens: {n_tokens}, "
                             f"features: {n_features}")
        return mask

    # ---- positions -----------------------------------------------------------------------------
    def compute_position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                             layout: PackedLayout | None, past_length: int = 0) -> torch.Tensor:
        """(B, L) position ids of the tokens in `input_ids`, the last L of the sequence.

        Real tokens count from 0 at the first non-padding token; with grouped positions the
        image spans advance by their group count, and later steps add the stored offset.
        """
        b, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones(b, past_length + length, dtype=torch.long, device=input_ids.device)
        if self.grouped_positions and layout is not None:
            image_mask = input_ids == self.config.image_token_id  # (B, L)
            mask = attention_mask[:, -length:]  # (B, L)
            positions = grouped_position_ids(image_mask, mask, layout)  # (B, L)
            last = (positions * mask).amax(-1, keepdim=True)  # (B, 1)
            self._rope_delta = last - (mask.sum(-1, keepdim=True) - 1)  # (B, 1)
            return positions
        positions = text_position_ids(attention_mask)[:, -length:]  # (B, L)
        if self.grouped_positions and past_length > 0 and self._rope_delta is not None \
                and self._rope_delta.shape[0] == b:
            positions = positions + self._rope_delta.to(positions.device)  # (B, L)
        return positions

    def _prepare_position_ids_for_generation(self, inputs_tensor: torch.Tensor,
                                             model_kwargs: dict[str, Any]) -> torch.Tensor:
        """Generation starts from grouped positions; `generate` then continues at last + 1."""
        layout = model_kwargs.get("layout")
        input_ids = model_kwargs.get("input_ids", inputs_tensor)
        cache = model_kwargs.get("cache")
        past = cache.get_seq_length() if cache is not None else 0
        if self.grouped_positions and layout is not None and past == 0 and input_ids.dtype == torch.long:
            return self.compute_position_ids(input_ids, model_kwargs.get("attention_mask"), layout)
        return super()._prepare_position_ids_for_generation(inputs_tensor, model_kwargs)

    # ---- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        layout: PackedLayout | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        image_sizes: torch.Tensor | None = None,
        past_key_values: Any = None,
        vision_features: VisionFeatures | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Causal-LM forward with the visual tokens merged at the `<image>` placeholders."""
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if layout is not None and pixel_values is None:
            raise ValueError("a layout without pixel_values: the processor returns both")
        if pixel_values is not None and layout is None:  # the transformers-Llava call: mask-free fusions only
            layout = planned_layout(self.config.model_spec, tuple(self.config.grid), pixel_values.shape[0])
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, L, Dl)
        if pixel_values is None and (self.training or is_deepspeed_zero3_enabled()):
            inputs_embeds = inputs_embeds + self._dummy_vision_pass(inputs_embeds)  # (B, L, Dl), unchanged
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError("images need input_ids to find their <image> placeholders")
            features = self.get_image_features(pixel_values, layout, vision_features)  # (ΣT, Dl)
            image_mask = self.image_token_mask(input_ids, features.shape[0])  # (B, L)
            inputs_embeds = inputs_embeds.masked_scatter(
                image_mask.unsqueeze(-1).to(inputs_embeds.device),
                features.to(inputs_embeds.device, inputs_embeds.dtype))  # (B, L, Dl)
            if labels is not None:
                labels = labels.masked_fill(image_mask.to(labels.device), IGNORE_INDEX)  # (B, L)
        if position_ids is None and input_ids is not None:
            past = cache.get_seq_length() if cache is not None else 0
            position_ids = self.compute_position_ids(input_ids, attention_mask,
                                                     layout if pixel_values is not None else None, past)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, labels=labels, use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs,
        )

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, *args: Any,
                                      is_first_iteration: bool | None = False, **kwargs: Any) -> dict[str, Any]:
        """Images and layouts only at the first step; later steps read them from the KV cache."""
        image_inputs = {k: kwargs.pop(k, None) for k in _IMAGE_INPUTS}
        inputs = super().prepare_inputs_for_generation(input_ids, *args, is_first_iteration=is_first_iteration,
                                                       **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            inputs.update({k: v for k, v in image_inputs.items() if v is not None})
        return inputs


AutoModelForImageTextToText.register(OGLlavaConfig, OGLlavaForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(OGLlavaConfig, OGLlavaForConditionalGeneration, exist_ok=True)
