"""Reporting an ablation: the summary (mean and spread over seeds), a rich table, results.json,
a grouped bar chart (`accuracy.png`) and an examples figure (`examples.png`)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.table import Table  # noqa: E402

from og.eval.benchmarks.shapes import TYPES  # noqa: E402

COLUMNS = ("accuracy", *TYPES)
SHORT = {"accuracy": "all", "attribute": "attr", "binding": "bind", "relation": "rel", "replace": "repl"}


def summarize(results: list[dict[str, Any]], bench: str = "test") -> list[dict[str, Any]]:
    """One row per variant: mean and standard deviation over seeds of every score column."""
    rows: dict[str, dict[str, Any]] = {}
    for res in results:
        row = rows.setdefault(res["label"], {"label": res["label"], "spec": res["spec"], "seeds": [], "runs": []})
        row["seeds"].append(res["seed"])
        row["runs"].append(res)
    out = []
    for row in rows.values():
        summary: dict[str, Any] = {"label": row["label"], "spec": row["spec"], "seeds": row["seeds"]}
        for split in {b for r in row["runs"] for b in r["scores"]}:
            for col in COLUMNS:
                values = [r["scores"][split].get(col) for r in row["runs"] if split in r["scores"]]
                values = [v for v in values if v is not None]
                summary[f"{split}/{col}"] = _mean_sd(values)
        summary["visual_tokens"] = statistics.mean(r["visual_tokens"]["mean"] for r in row["runs"])
        summary["train_seconds"] = statistics.mean(r["train_seconds"] for r in row["runs"])
        out.append(summary)
    return out


def _mean_sd(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "sd": None}
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def table(summary: list[dict[str, Any]], split: str = "test", title: str = "") -> Table:
    """Accuracy per question type per variant (mean ± sd over seeds), visual tokens per image."""
    tab = Table(title=title or f"{split} accuracy (%), mean±sd over seeds", title_justify="left")
    tab.add_column("variant", style="bold cyan", no_wrap=True)
    for col in COLUMNS:
        tab.add_column(SHORT.get(col, col), justify="right", no_wrap=True)
    tab.add_column("tokens", justify="right")
    for row in summary:
        cells = [_fmt(row.get(f"{split}/{col}")) for col in COLUMNS]
        tab.add_row(row["label"], *cells, f"{row['visual_tokens']:.1f}")
    return tab


def _fmt(cell: dict[str, float | None] | None) -> str:
    if not cell or cell["mean"] is None:
        return "-"
    return f"{cell['mean']:.1f}±{cell['sd']:.1f}" if cell.get("n", 1) > 1 else f"{cell['mean']:.1f}"


def markdown(summary: list[dict[str, Any]], split: str = "test") -> str:
    """The same table as markdown (for the README)."""
    head = "| variant | " + " | ".join(COLUMNS) + " | tokens/img |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in summary:
        cells = " | ".join(_fmt(row.get(f"{split}/{c}")) for c in COLUMNS)
        lines.append(f"| {row['label']} | {cells} | {row['visual_tokens']:.1f} |")
    return "\n".join(lines)


def write_json(path: Path, summary: list[dict[str, Any]], results: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    slim = [{k: v for k, v in r.items() if k != "predictions"} for r in results]
    path.write_text(json.dumps({"meta": meta, "summary": summary, "runs": slim}, indent=1))
    return path


def chance_levels(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy (%) of guessing uniformly among each item's options, per probe type and overall."""
    levels: dict[str, list[float]] = {}
    for row in rows:
        for key in ("accuracy", row["type"]):
            levels.setdefault(key, []).append(100.0 / len(row["options"]))
    return {key: statistics.mean(values) for key, values in levels.items()}


def accuracy_chart(summary: list[dict[str, Any]], out: Path, split: str = "test",
                   chance: dict[str, float] | None = None) -> Path:
    """Grouped bars: one group per question type, one bar per variant, error bars = sd over seeds;
    a dashed line per group marks chance when given."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(COLUMNS), 4.2))
    width = 0.8 / max(len(summary), 1)
    x = np.arange(len(COLUMNS))
    for i, row in enumerate(summary):
        cells = [row.get(f"{split}/{c}") or {"mean": None, "sd": None} for c in COLUMNS]
        means = [c["mean"] or 0.0 for c in cells]
        sds = [c["sd"] or 0.0 for c in cells]
        ax.bar(x + (i - (len(summary) - 1) / 2) * width, means, width, yerr=sds, capsize=2, label=row["label"])
    for k, col in enumerate(COLUMNS):
        if chance and col in chance:
            ax.hlines(chance[col], k - 0.45, k + 0.45, colors="black", linestyles="dashed", linewidth=1,
                      label="chance" if k == 0 else None)
    ax.set_xticks(x, COLUMNS)
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _option(pred: dict[str, Any], index: int | None) -> str:
    return "(none)" if index is None else pred["options"][index][:72]


def examples_figure(results: list[dict[str, Any]], image_root: Path, stores: dict[str, Any], out: Path,
                    n: int = 6, split: str = "test") -> Path:
    """Test images with the masks each variant read, the question, each variant's answer."""
    from og.viz import overlay_masks

    first = {}
    for res in results:  # seed of each variant with the lowest number
        if res["label"] not in first or res["seed"] < first[res["label"]]["seed"]:
            first[res["label"]] = res
    runs = list(first.values())
    by_id = [{p["id"]: p for p in r["predictions"].get(split, [])} for r in runs]
    ids = [i for i in by_id[0] if all(i in b for b in by_id)]
    disagree = [i for i in ids if len({b[i]["prediction"] for b in by_id}) > 1]
    chosen = (disagree + [i for i in ids if i not in disagree])[:n]
    masked = [r for r in runs if r["masks"]]
    cols = 1 + len(masked)
    fig, axes = plt.subplots(len(chosen), cols, figsize=(2.4 * cols + 5.5, 2.4 * len(chosen)), squeeze=False)
    for row, item_id in enumerate(chosen):
        pred = by_id[0][item_id]
        image = Image.open(image_root / pred["image_key"]).convert("RGB")
        panels = [("image", image)] + [
            (r["label"], overlay_masks(image, stores[r["masks"]].get(pred["image_key"]))) for r in masked]
        for col, (name, picture) in enumerate(panels):
            axes[row][col].imshow(picture)
            axes[row][col].set_axis_off()
            if row == 0:
                axes[row][col].set_title(name, fontsize=7)
        lines = [pred["question"][:60], f"right: {_option(pred, pred['answer'])}"]
        for j, r in enumerate(runs):
            guess = by_id[j][item_id]["prediction"]
            lines.append(f"{'+' if guess == pred['answer'] else '-'} {r['label'][:18]}: {_option(pred, guess)}")
        axes[row][-1].text(1.05, 0.5, "\n".join(lines), transform=axes[row][-1].transAxes, fontsize=6,
                           va="center", family="monospace")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
