"""Import a `transformers` LlavaForConditionalGeneration checkpoint (llava-hf) as an og model.

LLaVA-1.5 is og's `patches` fusion with the `mlp2x_gelu` projector: CLIP vision tower, hidden
states of `vision_feature_layer` with the CLS token dropped (strategy "default"), one
placeholder per patch. The weights are renamed (both the transformers >= 4.52 layout,
`model.vision_tower.*`, and the older one, `vision_tower.*`), the og model is built on the meta
device and filled with them (no random init of a 7B model), then saved with its processor.
Loaded, it gives the same logits as the source model on the same inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from og.encoders.clip import CLIPEncoder
from og.masks.geometry import ImageTransform
from og.model.configuration import OGLlavaConfig
from og.model.factory import save
from og.model.modeling import OGLlavaForConditionalGeneration
from og.model.processing import OGLlavaProcessor, prepare_tokenizer
from og.spec import EncoderSpec, FusionSpec, LLMSpec, ModelSpec, PositionSpec, ProjectorSpec, SegmenterSpec

# (llava-hf prefix, og prefix): first match wins. "{encoder}" / "{projector.N}" are resolved
# from the og model's own module names.
KEY_RULES: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.", "encoder.{encoder}"),
    ("model.multi_modal_projector.linear_1.", "projector.{projector.0}"),
    ("model.multi_modal_projector.linear_2.", "projector.{projector.1}"),
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("vision_tower.", "encoder.{encoder}"),  # transformers < 4.52
    ("multi_modal_projector.linear_1.", "projector.{projector.0}"),
    ("multi_modal_projector.linear_2.", "projector.{projector.1}"),
    ("language_model.model.", "language_model.model."),
    ("language_model.lm_head.", "language_model.lm_head."),
)
REQUIRED = {"model_type": "llava", "vision_feature_select_strategy": "default", "projector_hidden_act": "gelu"}


def read_llava_config(src: Path) -> Any:
    config = AutoConfig.from_pretrained(src)
    for key, value in REQUIRED.items():
        if getattr(config, key, None) != value:
            raise ValueError(f"{src}: {key}={getattr(config, key, None)!r}, but og imports LLaVA checkpoints with "
                             f"{key}={value!r} only (LLaVA-1.5: CLIP tower, CLS dropped, mlp2x_gelu)")
    if config.vision_config.model_type != "clip_vision_model":
        raise ValueError(f"{src}: vision tower {config.vision_config.model_type!r}; og imports CLIP towers only")
    if not isinstance(config.vision_feature_layer, int):
        raise ValueError(f"{src}: vision_feature_layer={config.vision_feature_layer!r}; og takes one layer")
    return config


def read_state_dict(src: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint (safetensors shards, or a legacy .bin loaded weights-only)."""
    files = sorted(src.glob("*.safetensors"))
    if files:
        return {k: v for f in files for k, v in load_file(str(f)).items()}
    bins = sorted(src.glob("pytorch_model*.bin"))
    if not bins:
        raise FileNotFoundError(f"{src} has no *.safetensors or pytorch_model*.bin weights")
    return {k: v for f in bins for k, v in torch.load(f, map_location="cpu", weights_only=True).items()}


def read_normalisation(src: Path) -> tuple[list[float], list[float]]:
    file = src / "preprocessor_config.json"
    data = json.loads(file.read_text()) if file.is_file() else {}
    mean, std = data.get("image_mean", CLIPEncoder.default_mean), data.get("image_std", CLIPEncoder.default_std)
    return list(mean), list(std)


def llava_spec(config: Any) -> ModelSpec:
    """The og variant of a LLaVA-1.5 checkpoint (variant labels are informational)."""
    v = config.vision_config
    l336 = CLIPEncoder.variants["l336"]
    is_l336 = all(getattr(v, k) == l336[k] for k in ("hidden_size", "num_hidden_layers", "image_size", "patch_size"))
    return ModelSpec(EncoderSpec("clip", "l336" if is_l336 else "llava-hf", config.vision_feature_layer),
                     SegmenterSpec("none"), FusionSpec("patches"), PositionSpec("none"),
                     ProjectorSpec("mlp2x_gelu"), LLMSpec("hf", config.text_config.model_type))


def _placeholders(model: OGLlavaForConditionalGeneration) -> dict[str, str]:
    tower = next(n for n, m in model.encoder.named_modules() if isinstance(m, PreTrainedModel))
    linears = [n for n, m in model.projector.named_modules() if isinstance(m, nn.Linear)]
    if len(linears) != 2:
        raise ValueError(f"projector {type(model.projector).__name__} has {len(linears)} linear layers; "
                         "LLaVA's mlp2x_gelu has 2")
    return {"{encoder}": f"{tower}.", "{projector.0}": f"{linears[0]}.", "{projector.1}": f"{linears[1]}."}


def _fit(key: str, expected: set[str], tower: str) -> str:
    """CLIP checkpoints saved by transformers < 5 have a `vision_model.` level under the tower
    that 5.x has not (and the reverse): take whichever spelling the og model uses."""
    if key in expected or not key.startswith(tower):
        return key
    rest = key[len(tower):]
    for alt in (tower + rest.removeprefix("vision_model."), f"{tower}vision_model.{rest}"):
        if alt in expected:
            return alt
    return key


def rename(state: dict[str, torch.Tensor], model: OGLlavaForConditionalGeneration) -> dict[str, torch.Tensor]:
    """llava-hf names -> og names; keys with no og counterpart are an error naming them."""
    holes = _placeholders(model)
    expected = set(model.state_dict())
    out, unknown = {}, []
    for key, value in state.items():
        rule = next(((a, b) for a, b in KEY_RULES if key.startswith(a)), None)
        if rule is None:
            unknown.append(key)
            continue
        target = rule[1]
        for hole, name in holes.items():
            target = target.replace(hole, name)
        target = _fit(target + key[len(rule[0]):], expected, "encoder." + holes["{encoder}"])
        if target not in expected:
            unknown.append(key)
            continue
        out[target] = value
    if unknown:
        raise ValueError(f"{len(unknown)} weights of the LLaVA checkpoint have no og counterpart, e.g. {unknown[0]!r}")
    return out


def convert_llava_hf(src: str | Path, dst: str | Path, chat_template: str = "vicuna_v1",
                     pad_to_square: bool = True) -> Path:
    """Write the og checkpoint of the llava-hf checkpoint at `src` into `dst`; returns `dst`."""
    src, dst = Path(src), Path(dst)
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src} has no config.json; give a local LlavaForConditionalGeneration directory")
    llava = read_llava_config(src)
    spec = llava_spec(llava)
    mean, std = read_normalisation(src)
    v = llava.vision_config
    grid = [v.image_size // v.patch_size] * 2
    text_config = llava.text_config.to_dict()
    config = OGLlavaConfig(spec=spec.to_dict(), text_config=text_config, image_token_id=llava.image_token_id,
                           grid=grid, vision_config={"vision_config": v.to_dict(), "mean": mean, "std": std})
    with torch.device("meta"):
        model = OGLlavaForConditionalGeneration(config)
    state = rename(read_state_dict(src), model)
    expected = set(model.state_dict())
    tied = set(model.all_tied_weights_keys)
    missing = sorted(expected - set(state) - tied)
    if missing:
        raise ValueError(f"the LLaVA checkpoint lacks {len(missing)} weights og needs, e.g. {missing[0]!r}")
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(src))
    processor = OGLlavaProcessor(tokenizer, ImageTransform(v.image_size, mean, std, pad_to_square),
                                 spec.fusion, tuple(grid), chat_template=chat_template)
    if processor.image_token_id != llava.image_token_id:
        raise ValueError(f"the tokenizer's '<image>' id is {processor.image_token_id} but the checkpoint's "
                         f"image_token_id is {llava.image_token_id}")
    return save(model, processor, dst)
