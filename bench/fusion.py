"""Fusion benchmark (issue 4 "Speed"): processor-side layout, model-side fusion, against the
published loop structure and a CLIP ViT-L/14-336 forward. Prints a table; not a test.

    OMP_NUM_THREADS=1 .venv/bin/python bench/fusion.py [--batch 16] [--masks 40] [--clip-batch 2]

Synthetic but realistic input: 16 images, 40 elliptic object masks each at 336x336 (radii 6-60
px), patch features (B, 576, 1024), fp32, CPU. The published-structure baseline is written
here (not imported): per image, per mask, flatten the mask and 1-D adaptive-average-pool it to
h*w bins ("at least half a pixel"), boolean-index the features, concatenate [mean, bom, mask
patches, ...], then zero-pad the batch and stack. The vectorised fusion is timed on the same
tokens (raster1d downsampler, no budget: its output is checked equal to the baseline's) and
on the default spec (area downsampler, unbounded). CLIP runs with random weights on a smaller
batch and its time is scaled linearly to the full batch (said in the table).

The frontier fusions (`patchpool`, `prune` by random / norm / cls, `roialign`) get a row each:
their layout per image and their forward, against the memory floor above (writing the
published token set once; goal: within 1.5x of it).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from og.fusion import PackedLayout, downsample, plan_layout
from og.registry import FUSIONS
from og.spec import FusionSpec


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best (minimum) seconds of `repeats` calls after one warm-up (CUDA work is synchronised).

    The minimum, not the mean, because this machine is shared: noise only ever adds time."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_masks(n_images: int, n_masks: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n_images):
        c = torch.rand(n_masks, 2, generator=g) * size  # (M, 2) centres
        r = 6 + torch.rand(n_masks, 2, generator=g) * 54  # (M, 2) radii
        dy = (yy - c[:, 0, None, None]) / r[:, 0, None, None]  # (M, H, W)
        dx = (xx - c[:, 1, None, None]) / r[:, 1, None, None]  # (M, H, W)
        out.append(dy**2 + dx**2 <= 1)  # (M, H, W) bool
    return out


def pool_1d_only(features: torch.Tensor, masks: list[torch.Tensor]) -> None:
    """Just the baseline's per-mask 1-D downsampling, to show where its time goes."""
    n = features.shape[1]
    for image_masks in masks:
        for mask in image_masks:
            counts = F.adaptive_avg_pool1d(mask.float().flatten()[None, None], n).squeeze() * (mask.numel() / n)
            (counts >= 0.5).any().item()


def published_loop(features: torch.Tensor, masks: list[torch.Tensor], bom: torch.Tensor) -> torch.Tensor:
    """The published structure: loops, 1-D pooling inside the forward, boolean indexing, padding."""
    n = features.shape[1]
    per_image = []
    for feats, image_masks in zip(features, masks, strict=True):
        selected = []
        for mask in image_masks:
            flat = mask.float().flatten()[None, None]  # (1, 1, H*W)
            counts = F.adaptive_avg_pool1d(flat, n).squeeze() * (mask.numel() / n)  # (N,)
            keep = counts >= 0.5
            if keep.any().item():
                selected.append(keep)
        if not selected:
            selected = [torch.ones(n, dtype=torch.bool, device=feats.device)]
        parts = [feats.mean(0, keepdim=True)]
        for keep in selected:
            parts += [bom, feats[keep]]
        per_image.append(torch.cat(parts))
    longest = max(t.shape[0] for t in per_image)
    padded = [torch.cat([t, t.new_zeros(longest - t.shape[0], t.shape[1])]) for t in per_image]
    return torch.stack(padded)  # (B, T_max, D)


def plan_batch(spec: FusionSpec, masks: list[torch.Tensor], grid: tuple[int, int]) -> PackedLayout:
    return PackedLayout.pack([plan_layout(spec, downsample(m, grid, spec.downsampler), grid) for m in masks])


def clip_seconds(batch: int, size: int, repeats: int, device: str) -> float:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=size, patch_size=14, projection_dim=768)
    model = CLIPVisionModel(config).eval().to(device)
    pixels = torch.randn(batch, 3, size, size, device=device)
    with torch.inference_mode():
        return timed(lambda: model(pixels, output_hidden_states=True).hidden_states[-2][:, 1:], repeats)


FRONTIER = ("patchpool(k=4)", "prune(keep=64)", "prune(keep=64,by=norm)", "prune(keep=64,by=cls)",
            "roialign", "roialign(r=3,cells=weight)")


def frontier_rows(features: torch.Tensor, masks: list[torch.Tensor], grid: tuple[int, int], args: argparse.Namespace,
                  floor: float) -> list[tuple[str, float, str]]:
    """Layout per image and forward of each frontier fusion, the forward against the memory floor."""
    rows = []
    attention = torch.rand(features.shape[:2], device=features.device).softmax(-1)  # (B, N) stand-in CLS attention
    for fid in FRONTIER:
        spec = FusionSpec.parse(fid)
        covs = [downsample(m, grid) for m in masks]
        plan = timed(lambda spec=spec, covs=covs: [plan_layout(spec, c, grid, key=str(i)) for i, c in enumerate(covs)],
                     args.repeats)
        packed = PackedLayout.pack([plan_layout(spec, c, grid, key=str(i)) for i, c in enumerate(covs)]).to(args.device)
        fusion = FUSIONS.get(spec.name)(spec, args.dim, grid).eval().to(args.device)
        extra = {"cls_attention": attention} if fusion.needs_cls_attention else {}
        with torch.inference_mode():
            t = timed(lambda fusion=fusion, packed=packed, extra=extra: fusion(features, packed, **extra), args.repeats)
        rows.append((f"{fid}: layout per image", plan / args.batch, ""))
        rows.append((f"{fid}: fusion, {packed.total} tokens", t, f"{t / floor:.2f}x the memory floor (goal <= 1.5x)"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--masks", type=int, default=40)
    ap.add_argument("--size", type=int, default=336)
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--clip-batch", type=int, default=2, help="images for the CLIP forward (scaled to --batch)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="device of the model-side parts (the layout is always CPU)")
    args = ap.parse_args()
    grid = (args.size // args.patch,) * 2
    masks = make_masks(args.batch, args.masks, args.size)
    features = torch.randn(args.batch, grid[0] * grid[1], args.dim, device=args.device)
    rows: list[tuple[str, float, str]] = []

    default = FusionSpec("masktoken")
    same = FusionSpec("masktoken", downsampler="raster1d")  # the published token set (unbounded)
    one = timed(lambda: [plan_layout(default, downsample(m, grid), grid) for m in masks], args.repeats)
    rows.append(("layout + area downsampling, per image", one / args.batch, "goal < 5 ms"))
    layouts = [plan_layout(default, downsample(m, grid), grid) for m in masks]
    pack = timed(lambda: PackedLayout.pack(layouts), args.repeats)
    rows.append(("  packing the batch (per image)", pack / args.batch, ""))
    r1d = timed(lambda: [plan_layout(same, downsample(m, grid, "raster1d"), grid) for m in masks], args.repeats)
    rows.append(("layout + raster1d downsampling, per image", r1d / args.batch, ""))

    fusion = FUSIONS.get("masktoken")(same, args.dim, grid).eval().to(args.device)
    packed_same = plan_batch(same, masks, grid).to(args.device)
    packed_default = plan_batch(default, masks, grid).to(args.device)
    dev_masks = [m.to(args.device) for m in masks]
    with torch.inference_mode():
        ours = fusion(features, packed_same)
        loop = published_loop(features, dev_masks, fusion.bom)
        start = 0
        for b, n_tok in enumerate(packed_same.lengths.tolist()):
            assert torch.allclose(ours[start : start + n_tok], loop[b, :n_tok], atol=1e-5), f"image {b} differs"
            start += n_tok
        t_loop = timed(lambda: published_loop(features, dev_masks, fusion.bom), max(1, args.repeats // 2))
        t_pool = timed(lambda: pool_1d_only(features, dev_masks), max(1, args.repeats // 2))
        t_same = timed(lambda: fusion(features, packed_same), args.repeats)
        t_default = timed(lambda: fusion(features, packed_default), args.repeats)
        t_write = timed(lambda: features.new_empty(packed_same.total, args.dim).fill_(1.0), args.repeats)
    rows.append((f"published loop (1-D pool, index, cat, pad), {packed_same.total} tokens", t_loop, ""))
    rows.append(("  of which the per-mask 1-D pooling", t_pool, f"{100 * t_pool / t_loop:.0f}% of the loop"))
    rows.append(("  writing the output once (allocate + fill, memory floor)", t_write, ""))
    rows.append(("vectorised fusion, same tokens (checked equal)", t_same,
                 f"{t_loop / t_same:.0f}x faster (goal >= 100x)"))
    rows.append((f"vectorised fusion, default spec, {packed_default.total} tokens", t_default,
                 f"{t_loop / t_default:.0f}x faster"))

    rows += frontier_rows(features, masks, grid, args, t_write)

    t_clip = clip_seconds(args.clip_batch, args.size, max(1, args.repeats // 2), args.device)
    t_clip *= args.batch / args.clip_batch
    rows.append((f"CLIP ViT-L/14-{args.size} forward, random weights (x{args.batch}/{args.clip_batch} scaled)",
                 t_clip, ""))
    rows.append(("  fusion (default spec) / CLIP", t_default, f"{100 * t_default / t_clip:.3f}% (goal < 5%)"))
    rows.append(("  fusion (published tokens) / CLIP", t_same, f"{100 * t_same / t_clip:.3f}%"))

    table = Table(title=f"og fusion: batch {args.batch}, {args.masks} masks at {args.size}x{args.size}, "
                        f"grid {grid[0]}x{grid[1]}, D={args.dim}, fp32 {args.device}, "
                        f"{torch.get_num_threads()} CPU thread(s), best of {args.repeats}")
    table.add_column("what")
    table.add_column("time", justify="right")
    table.add_column("ratio / goal")
    for what, sec, note in rows:
        table.add_row(what, f"{sec * 1e3:.3f} ms", note)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
