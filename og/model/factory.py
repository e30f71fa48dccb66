"""`build(spec, ...)` and `load(path)`: the Python entry points returning `(model, processor)`.

`build` assembles a model from its components (real weights from local paths, random weights
from the spec's named variants otherwise), adds the `<image>` token to the tokenizer and
resizes the LLM's embeddings to match. `save(model, processor, path)` writes the model
(safetensors + config with the full spec) and the processor (tokenizer + settings) into one
directory, which `load(path)` reads back. Masks: a MaskStore (`mask_store=`) or, failing
that, the spec's segmenter, built on first use (`segmenter_path=` for its weights).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from og.masks.geometry import ImageTransform
from og.model.configuration import OGLlavaConfig
from og.model.modeling import OGLlavaForConditionalGeneration
from og.model.processing import SETTINGS_FILE, OGLlavaProcessor, prepare_tokenizer
from og.model.sources import LazySegmenter, open_store
from og.registry import ENCODERS, LLMS
from og.spec import PARTS, ModelSpec

# the library each optional component family needs, for the "not installed" error
PACKAGES = {
    ("encoder", "open_clip"): "open_clip_torch", ("encoder", "timm"): "timm",
    ("segmenter", "sam2"): "sam2", ("segmenter", "sam"): "segment-anything",
    ("segmenter", "slic"): "scikit-image",
}
# the chat template a checkpoint's LLM variant implies (first matching substring)
TEMPLATE_BY_VARIANT = {"vicuna": "vicuna_v1", "llama3": "llama3", "llama-3": "llama3"}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def check_installed(spec: ModelSpec, where: str = "spec") -> None:
    """Raise naming the first component of `spec` that is not registered here, and what to install."""
    for part, _ in PARTS:
        component = getattr(spec, part)
        try:
            component.validate()
        except Exception as err:  # noqa: BLE001 - a registry error or the import error of its library
            package = PACKAGES.get((part, component.name))
            hint = (f"install its library: pip install {package}" if package else
                    "install the package that registers it (an og plugin) or pick a registered one")
            raise ValueError(f"{where} needs {part} {component.name!r}, which is not available here ({err}); "
                             f"{hint}") from None


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def default_template(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> str:
    """The chat template the LLM was tuned with: by its variant name, else its tokenizer's own."""
    variant = spec.llm.variant.lower()
    for key, name in TEMPLATE_BY_VARIANT.items():
        if key in variant:
            return name
    return "tokenizer" if getattr(tokenizer, "chat_template", None) else "llama3"


def _tokenizer(spec: ModelSpec, tokenizer: Any, llm_path: str | None) -> PreTrainedTokenizerBase:
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    if tokenizer is not None or llm_path is not None:
        return AutoTokenizer.from_pretrained(str(tokenizer or llm_path))
    entry = LLMS.get(spec.llm.name)
    if hasattr(entry, "tokenizer"):
        return entry.tokenizer(spec.llm)
    raise ValueError(f"llm {spec.llm.name!r} has no tokenizer of its own; pass tokenizer=PATH or llm_path=")


def _processor(spec: ModelSpec, encoder: Any, tokenizer: PreTrainedTokenizerBase, mask_store: Any,
               segmenter_path: str | None, device: Any, chat_template: str | None,
               on_missing_masks: str) -> OGLlavaProcessor:
    source = open_store(mask_store, spec.segmenter) if mask_store is not None else (
        LazySegmenter(spec.segmenter, segmenter_path, device) if spec.uses_masks and spec.segmenter.name != "none"
        else None)
    return OGLlavaProcessor(tokenizer, ImageTransform.for_encoder(encoder), spec.fusion, encoder.grid,
                            chat_template=chat_template or default_template(spec, tokenizer),
                            mask_source=source, on_missing_masks=on_missing_masks)


def build(spec: ModelSpec | str, encoder_path: str | None = None, llm_path: str | None = None,
          tokenizer: PreTrainedTokenizerBase | str | None = None, segmenter_path: str | None = None,
          mask_store: Any = None, dtype: str | torch.dtype | None = None, device: str | torch.device | None = None,
          chat_template: str | None = None, on_missing_masks: str = "error", llm_config: dict[str, Any] | None = None,
          ) -> tuple[OGLlavaForConditionalGeneration, OGLlavaProcessor]:
    """A new model (and its processor) for `spec`: a ModelSpec, a spec id or a preset name.

    `llm_config`: config fields of a randomly built LLM (`tiny-llama`: e.g. `{"hidden_size": 128,
    "num_hidden_layers": 4}`); the saved config keeps them, so `load` rebuilds the same shape."""
    spec = ModelSpec.parse(spec, validate=False) if isinstance(spec, str) else spec
    check_installed(spec)
    tok = prepare_tokenizer(_tokenizer(spec, tokenizer, llm_path))
    encoder = ENCODERS.get(spec.encoder.name).from_spec(spec.encoder, path=encoder_path)
    if llm_config is not None and llm_path is not None:
        raise ValueError("llm_config shapes a random LLM; with llm_path the checkpoint's own config is used")
    llm = LLMS.get(spec.llm.name).from_spec(spec.llm, path=llm_path, config=llm_config,
                                            vocab_size=len(tok))  # grows the vocab
    processor = _processor(spec, encoder, tok, mask_store, segmenter_path, device, chat_template, on_missing_masks)
    config = OGLlavaConfig(spec=spec.to_dict(), vision_config=encoder.config_dict(), text_config=llm.config.to_dict(),
                           image_token_id=processor.image_token_id, grid=list(encoder.grid))
    model = OGLlavaForConditionalGeneration(config, encoder=encoder, language_model=llm)
    model.generation_config = generation_config(llm, tok)
    model.to(device=device, dtype=resolve_dtype(dtype))
    return model, processor


def generation_config(llm: Any, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """The LLM's own generation settings (e.g. Llama-3's end-of-turn ids), special ids filled in
    from the tokenizer where the LLM has none."""
    config = copy.deepcopy(getattr(llm, "generation_config", None) or GenerationConfig())
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        if getattr(config, key, None) is None:
            setattr(config, key, getattr(tokenizer, key))
    return config


def save(model: Any, processor: OGLlavaProcessor, path: str | Path) -> Path:
    """Model (safetensors + config with the spec) and processor (tokenizer + settings) in one directory."""
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def load(path: str | Path, dtype: str | torch.dtype | None = None, device: str | torch.device | None = None,
         mask_store: Any = None, segmenter_path: str | None = None, tokenizer: Any = None,
         chat_template: str | None = None, on_missing_masks: str | None = None, **kwargs: Any,
         ) -> tuple[OGLlavaForConditionalGeneration, OGLlavaProcessor]:
    """`(model, processor)` saved by `save` (or `model.save_pretrained` + a tokenizer).

    Extra keyword arguments go to `from_pretrained` (e.g. `device_map="auto"`).
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json; give a directory written by og's save / save_pretrained")
    config = OGLlavaConfig.from_pretrained(path)
    spec = config.model_spec
    check_installed(spec, where=f"checkpoint {str(path)!r}")
    model = OGLlavaForConditionalGeneration.from_pretrained(path, config=config, dtype=resolve_dtype(dtype), **kwargs)
    if device is not None:
        model.to(device)
    model.eval()
    if (path / SETTINGS_FILE).is_file() and tokenizer is None:
        overrides = {k: v for k, v in (("chat_template", chat_template), ("on_missing_masks", on_missing_masks)) if v}
        processor = OGLlavaProcessor.from_pretrained(path, **overrides)
        processor.mask_source = open_store(mask_store, spec.segmenter) if mask_store is not None else (
            LazySegmenter(spec.segmenter, segmenter_path, device)
            if spec.uses_masks and spec.segmenter.name != "none" else None)
    else:
        tok = prepare_tokenizer(_tokenizer(spec, tokenizer or path, None))
        processor = _processor(spec, model.encoder, tok, mask_store, segmenter_path, device, chat_template,
                               on_missing_masks or "error")
    if processor.image_token_id != config.image_token_id:
        raise ValueError(f"the tokenizer's {processor.image_token!r} id is {processor.image_token_id} but the model "
                         f"was trained with {config.image_token_id}; use the tokenizer saved with the model")
    return model, processor
