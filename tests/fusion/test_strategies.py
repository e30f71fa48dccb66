"""Fusion strategies against naive per-image, per-mask references; batch invariance; gradients."""

import pytest
import torch

from og.fusion import PackedLayout, plan_layout
from og.registry import FUSIONS
from og.spec import FusionSpec

GRID = (3, 4)
N, D = 12, 6
MASK_COUNTS = (2, 0, 5, 1)  # mixed per image, one image without masks


def make_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(MASK_COUNTS), N, D, generator=g)
    covs = []
    for m in MASK_COUNTS:
        cov = torch.randint(0, 5, (m, *GRID), generator=g).float() / 4
        cov *= torch.rand(m, *GRID, generator=g) > 0.5
        covs.append(cov)
    return feats, covs


def naive_tokens(spec: FusionSpec, f: torch.Tensor, cov: torch.Tensor, bom: torch.Tensor | None):
    """One image, plain loops: the documented semantics without a budget (max_tokens is large)."""
    flat = cov.reshape(cov.shape[0], N)
    kept = [m for m in range(cov.shape[0]) if any(flat[m, p] >= spec.threshold for p in range(N))]
    groups = [([p for p in range(N) if flat[m, p] >= spec.threshold], flat[m]) for m in kept]
    covered = {p for patches, _ in groups for p in patches}
    if not groups or (spec.filler and len(covered) < N):
        groups.append(([p for p in range(N) if p not in covered], torch.ones(N)))
    out = []
    if spec.global_view == "mean":
        out.append(f.mean(0))
    elif spec.global_view == "all":
        out.extend(f[p] for p in range(N))
    for patches, weight in groups:
        if spec.name == "masktoken":
            out.extend([bom[0]] if spec.bom_token else [])
            out.extend(f[p] for p in patches)
        else:  # maskpool: coverage-weighted mean of the member patches
            out.append(sum(weight[p] * f[p] for p in patches) / sum(weight[p] for p in patches))
    return torch.stack(out)


def run(spec, feats, covs, fusion=None):
    fusion = fusion or FUSIONS.get(spec.name)(spec, D, GRID)
    layouts = [plan_layout(spec, cov, GRID) for cov in covs]
    return fusion, layouts, fusion(feats, PackedLayout.pack(layouts))


SPECS = [
    FusionSpec("masktoken", max_tokens=200),
    FusionSpec("masktoken", max_tokens=200, filler=True, global_view="all"),
    FusionSpec("masktoken", max_tokens=200, bom_token=False, global_view="none", threshold=0.75),
    FusionSpec("maskpool"),
    FusionSpec("maskpool", filler=True, global_view="none", threshold=0.25),
    FusionSpec("maskpool", global_view="all"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_matches_naive_reference_with_mixed_mask_counts(spec):
    feats, covs = make_batch(1)
    fusion, layouts, out = run(spec, feats, covs)
    expected = torch.cat([naive_tokens(spec, feats[b], covs[b], fusion.bom) for b in range(len(covs))])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_batch_invariance(spec):
    feats, covs = make_batch(2)
    fusion, layouts, out = run(spec, feats, covs)
    start = 0
    for b, lay in enumerate(layouts):
        alone = fusion(feats[b : b + 1], PackedLayout.pack([lay]))
        assert torch.equal(out[start : start + len(lay)], alone)
        start += len(lay)


def test_patches_returns_features_unchanged():
    feats, covs = make_batch(3)
    spec = FusionSpec("patches")
    fusion, layouts, out = run(spec, feats, covs)
    assert torch.equal(out, feats.reshape(-1, D)) and not list(fusion.parameters())


def test_gradients_reach_bom_and_features():
    feats, covs = make_batch(4)
    feats.requires_grad_(True)
    spec = FusionSpec("masktoken", max_tokens=200)
    fusion, _, out = run(spec, feats, covs)
    assert isinstance(fusion.bom, torch.nn.Parameter) and fusion.bom.shape == (1, D)
    (out * torch.randn_like(out)).sum().backward()
    assert fusion.bom.grad is not None and fusion.bom.grad.abs().sum() > 0
    assert feats.grad.abs().sum(-1).gt(0).all()  # every patch reaches the output (mean token)
    pool_feats = feats.detach().clone().requires_grad_(True)
    _, _, pooled = run(FusionSpec("maskpool", global_view="none"), pool_feats, covs)
    pooled.sum().backward()
    assert pool_feats.grad.abs().sum() > 0


def test_bf16_forward_matches_fp32():
    feats, covs = make_batch(5)
    for spec in SPECS:
        fusion = FUSIONS.get(spec.name)(spec, D, GRID)
        _, _, ref = run(spec, feats, covs, fusion)
        _, _, out = run(spec, feats.bfloat16(), covs, fusion.bfloat16())
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=2e-2)


def test_bom_off_has_no_parameter_and_mismatched_inputs_fail_clearly():
    spec = FusionSpec("masktoken", bom_token=False)
    fusion = FUSIONS.get("masktoken")(spec, D, GRID)
    assert fusion.bom is None and not list(fusion.parameters())
    feats, covs = make_batch(6)
    with_bom = PackedLayout.pack([plan_layout(FusionSpec("masktoken"), c, GRID) for c in covs])
    with pytest.raises(ValueError, match="begin-of-mask tokens but fusion"):
        fusion(feats, with_bom)
    with pytest.raises(ValueError, match="do not match this fusion"):
        fusion(feats[:2], with_bom)
    other = PackedLayout.pack([plan_layout(spec, None, (4, 3)) for _ in covs])
    with pytest.raises(ValueError, match="layout grid"):
        FUSIONS.get("masktoken")(spec, D, (3, 4))(feats, other)


def test_forward_does_not_sync_or_loop(monkeypatch):
    """No `.item()` / `.tolist()` / `nonzero` in the forward: they would fail on a tensor subclass guard."""
    feats, covs = make_batch(7)
    spec = FusionSpec("maskpool", filler=True)
    packed = PackedLayout.pack([plan_layout(spec, c, GRID) for c in covs])
    fusion = FUSIONS.get("maskpool")(spec, D, GRID)
    banned = ("item", "tolist", "nonzero", "cpu", "numpy")

    def fail(*_a, **_k):
        raise AssertionError("host sync in the fusion forward")

    for name in banned:
        monkeypatch.setattr(torch.Tensor, name, fail)
    monkeypatch.setattr(torch, "nonzero", fail)
    out = fusion(feats, packed)
    monkeypatch.undo()
    assert out.shape == (packed.total, D)
