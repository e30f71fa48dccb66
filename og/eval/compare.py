"""Comparing results files: a grouped bar chart, and a grid of the items where the models disagree.

The grid shows each such item's image (with the masks the object-guided model used, when its
results name a MaskStore or a segmenter), the question, every model's answer and the right one,
like the side-by-side figures the OG-LLaVA paper shows for ConMe and MMVP.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from og.eval.report import headline_scores

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
                    [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]], dtype=np.float32)


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def compare_chart(records: list[dict[str, Any]], labels: list[str], out: str | Path) -> Path:
    """Grouped bars: one group per benchmark headline metric, one bar per results file."""
    scores = [headline_scores(r) for r in records]
    metrics = list(dict.fromkeys(m for s in scores for m in s))
    if not metrics:
        raise ValueError("the results files hold no scores to compare")
    width = 0.8 / len(records)
    x = np.arange(len(metrics))
    fig = Figure(figsize=(max(6.0, 0.9 * len(metrics) * max(1, len(records)) ** 0.5 + 2), 4.5))
    ax = fig.add_subplot()
    for k, (label, s) in enumerate(zip(labels, scores, strict=True)):
        values = [s.get(m) for m in metrics]
        bars = ax.bar(x + (k - (len(records) - 1) / 2) * width, [v or 0.0 for v in values], width, label=label)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate("n/a" if v is None else f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title("benchmark scores")
    return _save(fig, out)


def disagreements(records: list[dict[str, Any]], limit: int = 8) -> list[tuple[str, list[dict[str, Any]]]]:
    """(benchmark, [each model's prediction record]) for items the models answer differently.

    Items where one model is right and another wrong come first, then those with different wrong
    answers; within each, in benchmark file order.
    """
    split, differ = [], []
    for bench in records[0]["benchmarks"]:
        runs = [r["benchmarks"].get(bench) for r in records]
        if any(run is None for run in runs):
            continue
        by_id = [{p["id"]: p for p in run["predictions"]} for run in runs]
        for pred in runs[0]["predictions"]:
            preds = [m.get(pred["id"]) for m in by_id]
            if any(p is None for p in preds):
                continue
            if len({p["correct"] for p in preds}) > 1:
                split.append((bench, preds))
            elif len({p["prediction"] for p in preds}) > 1:
                differ.append((bench, preds))
    return (split + differ)[:limit]


def overlay(image: np.ndarray, masks: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """uint8 (H, W, 3) image with each of the bool masks (M, H, W) tinted in its own colour."""
    out = image.astype(np.float32)
    if masks is not None:
        for m, mask in enumerate(masks):
            out[mask] = (1 - alpha) * out[mask] + alpha * PALETTE[m % len(PALETTE)]
    return out.clip(0, 255).astype(np.uint8)


def _answer(pred: dict[str, Any]) -> str:
    if pred.get("missing_image"):
        return "(image missing)"
    if pred["prediction"] is None:
        return f"(no answer: {pred.get('output', '')[:40]!r})"
    return f"{chr(65 + pred['prediction'])}. {pred['options'][pred['prediction']]}"


def examples_grid(records: list[dict[str, Any]], labels: list[str], out: str | Path, limit: int = 8,
                  mask_lookup: Any = None) -> Path:
    """One row per disagreement: the image (masks overlaid by `mask_lookup(pred, image, full_size) ->
    bool (M, H, W) | None`), then the question, every model's answer and the right answer."""
    from og.eval.base import Item
    from og.eval.runner import load_image

    rows = disagreements(records, limit)
    if not rows:
        raise ValueError("the models agree on every common item; there is nothing to show")
    fig = Figure(figsize=(10, 2.9 * len(rows)))
    grid = fig.add_gridspec(len(rows), 2, width_ratios=[1, 2], wspace=0.05)
    for r, (bench, preds) in enumerate(rows):
        first = preds[0]
        ax_img, ax_txt = fig.add_subplot(grid[r, 0]), fig.add_subplot(grid[r, 1])
        ax_img.axis("off")
        ax_txt.axis("off")
        if first.get("missing_image") or not first["image"] or not Path(first["image"]).is_file():
            ax_img.text(0.5, 0.5, "image missing", ha="center", va="center")
        else:
            item = Item(first["id"], first["image"], first["question"], first["options"], first["answer"],
                        crop=tuple(first["crop"]) if first.get("crop") else None)
            image, full = load_image(item)
            masks = mask_lookup(first, image, full) if mask_lookup else None
            ax_img.imshow(overlay(np.asarray(image), masks))
        lines = [f"[{bench}] {first['id']}", *textwrap.wrap(first["question"], 70)]
        for label, pred in zip(labels, preds, strict=True):
            mark = "right" if pred["correct"] else "wrong"
            lines.append(f"{label}: {_answer(pred)}  ({mark})")
        lines.append(f"answer: {chr(65 + first['answer'])}. {first['options'][first['answer']]}")
        ax_txt.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace", wrap=True)
    return _save(fig, out)
