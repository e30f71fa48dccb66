"""Contract tests over every registered vision encoder, with tiny random models.

The prefix-token references run the libraries' own modules by hand (embeddings, then the
blocks one by one) and slice the CLS / register tokens off, so they do not reuse the
encoders' code path.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPVisionConfig, SiglipVisionConfig

from og.encoders.clip import CLIPEncoder
from og.encoders.siglip import SiglipEncoder
from og.registry import ENCODERS
from og.spec import EncoderSpec, SpecError

NAMES = ENCODERS.list()


def build(name: str, layer: int = -2, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return ENCODERS.get(name).from_spec(EncoderSpec(name, "tiny", layer), **kwargs).eval()


def pixels(encoder, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *encoder.image_size, generator=torch.Generator().manual_seed(1))


def _hf_reference(enc, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, int]:
    states = enc.model(pixel_values=x, output_hidden_states=True).hidden_states
    n_prefix = 1 if isinstance(enc, CLIPEncoder) else 0  # CLIP has a CLS token, SigLIP none
    return states[layer][:, n_prefix:], states[layer].shape[1]


def _open_clip_reference(visual, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, int]:
    h = visual.conv1(x).flatten(2).transpose(1, 2)  # (B, h*w, D)
    cls = visual.class_embedding.expand(h.shape[0], 1, -1)
    h = visual.ln_pre(torch.cat([cls, h], dim=1) + visual.positional_embedding)  # (B, 1 + h*w, D)
    blocks = visual.transformer.resblocks
    for blk in blocks[: len(blocks) + layer + 1]:
        h = blk(h)
    return h[:, 1:], h.shape[1]


def _timm_reference(model, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, int]:
    assert model.num_prefix_tokens == 3  # CLS + 2 registers in the tiny config
    h = model.norm_pre(model._pos_embed(model.patch_embed(x)))  # (B, 3 + h*w, D)
    for blk in model.blocks[: len(model.blocks) + layer + 1]:
        h = blk(h)
    return h[:, model.num_prefix_tokens:], h.shape[1]


PREFIX_TOKENS = {"clip": 1, "siglip": 0, "open_clip": 1, "timm": 3}  # CLS, registers
REFERENCE = {
    "clip": _hf_reference,
    "siglip": _hf_reference,
    "open_clip": lambda enc, x, layer: _open_clip_reference(enc.visual, x, layer),
    "timm": lambda enc, x, layer: _timm_reference(enc.model, x, layer),
}


def test_every_family_is_registered():
    assert NAMES == ["clip", "open_clip", "siglip", "timm"]


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_attributes(name):
    enc = build(name)
    with torch.no_grad():
        out = enc(pixels(enc))
    h, w = enc.grid
    assert out.shape == (2, h * w, enc.dim)
    assert enc.num_patches == h * w == 64  # tiny: 64 px images, patch 8
    assert len(enc.mean) == len(enc.std) == 3 and all(s > 0 for s in enc.std)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_layer_selects_a_different_block(name):
    last = build(name, layer=-1)
    second = build(name, layer=-2)
    second.load_state_dict(last.state_dict())
    x = pixels(last)
    with torch.no_grad():
        assert not torch.allclose(last(x), second(x))


@pytest.mark.parametrize("layer", [-1, -2])
@pytest.mark.parametrize("name", NAMES)
def test_prefix_tokens_dropped(name, layer):
    enc = build(name, layer=layer)
    x = pixels(enc)
    with torch.no_grad():
        expected, n_tokens = REFERENCE[name](enc, x, layer)
        out = enc(x)
    assert n_tokens == enc.num_patches + PREFIX_TOKENS[name]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", NAMES)
def test_config_dict_round_trip(name):
    enc = build(name)
    config = json.loads(json.dumps(enc.config_dict()))  # it is saved inside the og config
    again = ENCODERS.get(name).from_spec(enc.spec, config=config).eval()
    again.load_state_dict(enc.state_dict(), strict=True)
    assert (again.grid, again.dim, again.image_size, again.mean, again.std) == (
        enc.grid, enc.dim, enc.image_size, enc.mean, enc.std)
    x = pixels(enc)
    with torch.no_grad():
        torch.testing.assert_close(again(x), enc(x))


@pytest.mark.parametrize("name", NAMES)
def test_dtype_follows_the_module(name):
    enc = build(name).to(torch.bfloat16)
    out = enc(pixels(enc))  # float32 pixels are cast to the module's dtype
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("name", NAMES)
def test_layer_outside_the_model_is_refused(name):
    with pytest.raises(SpecError, match="layer=3"):
        build(name, layer=3)


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_unknown_named_variant_lists_the_variants(name):
    with pytest.raises(SpecError, match="tiny"):
        ENCODERS.get(name).from_spec(EncoderSpec(name, "huge"))


@pytest.mark.parametrize("name", ["open_clip", "timm"])
def test_unknown_library_model_name(name):
    with pytest.raises(SpecError, match="vit_basee"):
        ENCODERS.get(name).from_spec(EncoderSpec(name, "vit_basee"))


def test_named_variants_have_the_published_geometry():
    l336 = CLIPVisionConfig(**CLIPEncoder.variants["l336"])
    assert (l336.image_size // l336.patch_size, l336.hidden_size, l336.num_hidden_layers) == (24, 1024, 24)
    so400m = SiglipVisionConfig(**SiglipEncoder.variants["so400m-384"])
    assert (so400m.image_size // so400m.patch_size, so400m.hidden_size) == (27, 1152)


def test_open_clip_tag_sets_quick_gelu_and_normalisation():
    from og.encoders.open_clip import build_for_variant

    openai = build_for_variant("ViT-L-14-336@openai")  # OpenAI weights were trained with QuickGELU
    assert openai["model_kwargs"] == {"quick_gelu": True}
    assert openai["mean"] == [0.48145466, 0.4578275, 0.40821073]
    assert build_for_variant("ViT-B-16-SigLIP@webli")["mean"] == [0.5, 0.5, 0.5]
    assert build_for_variant("ViT-B-32") == {"model_name": "ViT-B-32", "model_kwargs": {}}
    with pytest.raises(SpecError, match="no pretrained tag 'nope'"):
        build_for_variant("ViT-B-32@nope")


@pytest.mark.parametrize("layer", [-3, -2, -1, 1])
@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_transformers_towers_run_only_the_blocks_read(name, layer):
    enc = build(name, layer=layer)
    blocks = getattr(enc.model, "vision_model", enc.model).encoder.layers
    x = pixels(enc)
    ran = [0] * len(blocks)
    for i, blk in enumerate(blocks):
        blk.register_forward_hook(lambda *_, i=i: ran.__setitem__(i, ran[i] + 1))
    out = enc(x)  # first: before transformers 5 has put its hidden-state hooks on the blocks
    out.sum().backward()
    read = layer % (len(blocks) + 1)  # hidden_states index: the blocks before it train, the others not
    assert ran == [int(i < max(read, 1)) for i in range(len(blocks))]  # the first block runs even for index 0
    assert [p.grad is not None for p in (blk.mlp.fc1.weight for blk in blocks)] == [i < read for i in
                                                                                   range(len(blocks))]
    assert getattr(enc.model, "vision_model", enc.model).encoder.layers is blocks  # every block is back
    with torch.no_grad():  # the whole model's hidden states are still all there, and the same
        expected, _ = _hf_reference(enc, x, layer)
        assert len(enc.model(pixel_values=x, output_hidden_states=True).hidden_states) == len(blocks) + 1
    torch.testing.assert_close(out.detach(), expected)
