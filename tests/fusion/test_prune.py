"""prune: random (seeded per image key), norm and cls against naive per-image references."""

import pytest
import torch

from og.fusion import PackedLayout, plan_layout
from og.fusion.layout import SELECTED
from og.registry import FUSIONS
from og.spec import FusionSpec

GRID, N, D = (4, 5), 20, 6


def run(spec, feats, keys, **kw):
    layouts = [plan_layout(spec, None, GRID, key=k) for k in keys]
    fusion = FUSIONS.get("prune")(spec, D, GRID)
    return layouts, fusion, fusion(feats, PackedLayout.pack(layouts), **kw)


def naive_top(score: torch.Tensor, keep: int) -> list[int]:
    """Indices of the `keep` largest scores, in raster order (plain sort)."""
    ranked = sorted(range(len(score)), key=lambda p: -float(score[p]))
    return sorted(ranked[:keep])


def test_random_is_seeded_per_key_and_raster_ordered():
    spec = FusionSpec("prune", keep=6)
    feats = torch.randn(3, N, D)
    keys = ["train/000001.png", "test/000007.png", "train/000001.png"]
    layouts, _, out = run(spec, feats, keys)
    first = layouts[0].patch.tolist()
    assert first == sorted(first) and len(set(first)) == 6 and layouts[2].patch.tolist() == first
    assert layouts[1].patch.tolist() != first  # another key, other patches
    assert plan_layout(spec, None, GRID, key=keys[0]).patch.tolist() == first  # the same in every run
    assert layouts[0].n_uncovered == N - 6 and len(layouts[0]) == 6
    for b, lay in enumerate(layouts):
        torch.testing.assert_close(out[b * 6 : (b + 1) * 6], feats[b, lay.patch])
    assert layouts[0].row.tolist() == [p // GRID[1] for p in first]


@pytest.mark.parametrize("by", ["norm", "cls"])
def test_norm_and_cls_pick_the_top_patches_per_image(by):
    spec = FusionSpec("prune", keep=7, by=by)
    feats = torch.randn(4, N, D, generator=torch.Generator().manual_seed(1))
    attention = torch.rand(4, N, generator=torch.Generator().manual_seed(2)).softmax(-1)
    kw = {"cls_attention": attention} if by == "cls" else {}
    layouts, fusion, out = run(spec, feats, "abcd", **kw)
    assert all((lay.kind == SELECTED).all() and len(lay) == 7 for lay in layouts)
    for b in range(4):
        score = feats[b].norm(dim=-1) if by == "norm" else attention[b]
        torch.testing.assert_close(out[b * 7 : (b + 1) * 7], feats[b, naive_top(score, 7)])
        alone = fusion(feats[b : b + 1], PackedLayout.pack([layouts[b]]),
                       **({"cls_attention": attention[b : b + 1]} if by == "cls" else {}))
        assert torch.equal(out[b * 7 : (b + 1) * 7], alone)  # batch invariance
    if by == "cls":
        with pytest.raises(ValueError, match="needs the encoder's CLS attention"):
            fusion(feats, PackedLayout.pack(layouts))


def test_budget_keep_over_grid_and_no_host_sync(monkeypatch):
    assert len(plan_layout(FusionSpec("prune", keep=50, by="norm"), None, GRID)) == N
    with pytest.raises(ValueError, match="always gives 8 tokens"):
        plan_layout(FusionSpec("prune", keep=8, max_tokens=6), None, GRID)
    spec = FusionSpec("prune", keep=5, by="norm")
    packed = PackedLayout.pack([plan_layout(spec, None, GRID)] * 3)
    fusion = FUSIONS.get("prune")(spec, D, GRID)
    for name in ("item", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("sync")))
    out = fusion(torch.randn(3, N, D), packed)
    monkeypatch.undo()
    assert out.shape == (15, D)


def test_cls_attention_of_the_encoder_matches_eager_attention():
    from og.registry import ENCODERS
    from og.spec import EncoderSpec

    torch.manual_seed(0)
    enc = ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny")).eval()
    pixels = torch.randn(2, 3, *enc.image_size)
    with torch.no_grad():
        feats, attention = enc.forward_with_cls_attention(pixels)
        assert torch.equal(feats, enc(pixels)) and attention.shape == (2, enc.num_patches)
        enc.model.set_attn_implementation("eager")
        ref = enc.model(pixel_values=pixels, output_attentions=True).attentions[-1][:, :, 0, 1:].mean(1)
    torch.testing.assert_close(attention, ref, atol=1e-6, rtol=1e-5)
    siglip = ENCODERS.get("siglip").from_spec(EncoderSpec("siglip", "tiny"))
    with pytest.raises(ValueError, match="has no CLS token"):
        siglip.forward_with_cls_attention(pixels)
    timm = ENCODERS.get("timm").from_spec(EncoderSpec("timm", "tiny")).eval()  # CLS + 2 register tokens
    captured = {}
    attn = timm.model.blocks[-1].attn
    with torch.no_grad():
        feats, attention = timm.forward_with_cls_attention(pixels)
        assert torch.equal(feats, timm(pixels))
        attn.fused_attn = False  # timm's explicit path: its attention probabilities pass through attn_drop
        hook = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("p", o))
        timm.model.forward_features(pixels)
        hook.remove()
    torch.testing.assert_close(attention, captured["p"][:, :, 0, timm.model.num_prefix_tokens:].mean(1))
    open_clip = ENCODERS.get("open_clip").from_spec(EncoderSpec("open_clip", "tiny"))
    with pytest.raises(ValueError, match="does not give its CLS attention"):
        open_clip.forward_with_cls_attention(pixels)


def test_switches_belong_to_their_fusion():
    from og.spec import SpecError

    assert FusionSpec.parse("prune(keep=8,by=cls)").id == "prune(keep=8,by=cls)"
    with pytest.raises(SpecError, match="takes no keep=8; it is a switch of 'prune'"):
        FusionSpec.parse("masktoken(keep=8)")
    with pytest.raises(SpecError, match="by='attention'"):
        FusionSpec("prune", by="attention")
    assert not FusionSpec("prune").uses_masks and FusionSpec("roialign").uses_masks
