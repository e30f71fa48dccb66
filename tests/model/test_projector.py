"""Projectors: shapes, and weights that map 1:1 onto transformers' LlavaMultiModalProjector."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from og.registry import PROJECTORS


@pytest.mark.parametrize("name", ["linear", "mlp2x_gelu"])
def test_shapes(name):
    projector = PROJECTORS.get(name)(48, 80)
    assert projector(torch.randn(7, 48)).shape == (7, 80)  # (ΣT, Dv) -> (ΣT, Dl)
    assert projector(torch.randn(2, 5, 48)).shape == (2, 5, 80)


def test_linear_is_one_affine_map():
    projector = PROJECTORS.get("linear")(8, 4)
    assert list(projector.state_dict()) == ["linear_1.weight", "linear_1.bias"]
    x = torch.randn(3, 8)
    torch.testing.assert_close(projector(x), x @ projector.linear_1.weight.T + projector.linear_1.bias)


def test_mlp2x_gelu_matches_transformers_llava_projector():
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=1,
                                       num_attention_heads=4, image_size=32, patch_size=8),
        text_config=LlamaConfig(hidden_size=80, intermediate_size=160, num_hidden_layers=1,
                                num_attention_heads=4, vocab_size=50),
    )
    reference = LlavaMultiModalProjector(config)
    ours = PROJECTORS.get("mlp2x_gelu")(48, 80)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(6, 48)
    torch.testing.assert_close(ours(x), reference(x))
    # the naive reference: Linear, exact GELU, Linear
    hidden = torch.nn.functional.gelu(x @ ours.linear_1.weight.T + ours.linear_1.bias)
    torch.testing.assert_close(ours(x), hidden @ ours.linear_2.weight.T + ours.linear_2.bias)
