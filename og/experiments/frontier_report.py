"""Reporting the token-efficiency frontier: one row per variant (mean visual tokens per image,
the binding + relation + order composite and every probe type, mean ± sd over seeds), the
Pareto front (fewest tokens, highest accuracy), `frontier.json`, a table and `frontier.png`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from og.experiments.ablate_report import COLUMNS, SHORT, _fmt, _mean_sd, summarize  # noqa: E402

COMPOSITE = ("binding", "relation", "order")  # the probe types the composite averages (per seed)
METRICS = ("composite", *COLUMNS)  # the chart's panels: the composite, overall accuracy, each probe type


def composite(scores: dict[str, Any]) -> float | None:
    """The mean of the binding, relation and order accuracies of one run; None when one is missing."""
    values = [scores.get(t) for t in COMPOSITE]
    return None if any(v is None for v in values) else statistics.mean(values)


def pareto_front(points: list[tuple[float, float | None]]) -> list[bool]:
    """Per (tokens, accuracy) point: True when no other point has at most its tokens and at least its
    accuracy with one of the two strictly better. Points without an accuracy are never on the front."""
    order = sorted((i for i, (_, acc) in enumerate(points) if acc is not None),
                   key=lambda i: (points[i][0], -points[i][1]))
    on_front = [False] * len(points)
    best, best_at = float("-inf"), None  # the highest accuracy seen at fewer or equal tokens, and where
    for i in order:
        tokens, acc = points[i]
        if acc > best or (acc == best and best_at == (tokens, acc)):  # an exact twin of a front point stays
            on_front[i] = True
            best, best_at = acc, (tokens, acc)
    return on_front


def frontier_rows(results: list[dict[str, Any]], families: dict[str, str], split: str = "test") -> list[dict]:
    """One row per variant label, in the order of `results`; `families` maps a label to its family."""
    rows = []
    for row in summarize(results, bench=split):
        runs = [r for r in results if r["label"] == row["label"]]
        per_seed = [composite(r["scores"].get(split, {})) for r in runs]
        rows.append({
            "label": row["label"], "family": families.get(row["label"], row["label"]), "spec": row["spec"],
            "masks": runs[0]["masks"], "seeds": row["seeds"], "visual_tokens": row["visual_tokens"],
            "composite": _mean_sd([v for v in per_seed if v is not None]),
            "accuracy": {col: row.get(f"{split}/{col}", _mean_sd([])) for col in COLUMNS},
            "train_seconds": row["train_seconds"],
        })
    fronts = fronts_of(rows)
    for row in rows:
        row["pareto"] = row["label"] in fronts["composite"]
    return rows


def _metric(row: dict[str, Any], metric: str) -> dict[str, Any]:
    return row["composite"] if metric == "composite" else row["accuracy"][metric]


def fronts_of(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per metric: the labels on its Pareto front (mean accuracy against mean visual tokens)."""
    fronts = {}
    for metric in METRICS:
        flags = pareto_front([(r["visual_tokens"], _metric(r, metric)["mean"]) for r in rows])
        fronts[metric] = [r["label"] for r, on in zip(rows, flags, strict=True) if on]
    return fronts


def _point(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {"label": row["label"], "tokens": row["visual_tokens"], **row["composite"]}


def goal(rows: list[dict[str, Any]], budget: float = 10.0, margin: float = 10.0, near: float = 3.0) -> dict:
    """Issue 11's goal on the composite: at <= `budget` tokens per image the best object-guided variant
    (one that reads masks) is >= `margin` points above the best patch baseline of that budget (a
    maskless variant), by more than 2 sd of the gap (sqrt(sd_a^2 + sd_b^2), over seeds), and within
    `near` points of the maskless variant with the most tokens (`patches`). `met` is None, with
    `why`, when a side is missing or a side has one seed (no sd of the gap to compare against)."""
    def best(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
        scored = [r for r in candidates if r["composite"]["mean"] is not None]
        return max(scored, key=lambda r: r["composite"]["mean"]) if scored else None

    within = [r for r in rows if r["visual_tokens"] <= budget]
    ours = best([r for r in within if r["masks"]])
    theirs = best([r for r in within if not r["masks"]])
    maskless = [r for r in rows if not r["masks"] and r["composite"]["mean"] is not None]
    full = max(maskless, key=lambda r: r["visual_tokens"]) if maskless else None
    record: dict[str, Any] = {"budget": budget, "object_guided": _point(ours), "patch_baseline": _point(theirs),
                              "patches": _point(full), "gap": None, "gap_sd": None, "below_patches": None,
                              "met": None, "why": "a side of the comparison is missing"}
    if ours and theirs and full:
        a, b = ours["composite"], theirs["composite"]
        record["gap"] = a["mean"] - b["mean"]
        record["gap_sd"] = (a["sd"] ** 2 + b["sd"] ** 2) ** 0.5
        record["below_patches"] = full["composite"]["mean"] - a["mean"]
        if min(a["n"], b["n"]) < 2:
            record["why"] = "one seed gives no sd of the gap: run --seeds 2 or more"
            return record
        record["met"], record["why"] = (record["gap"] >= margin and record["gap"] > 2 * record["gap_sd"]
                                        and record["below_patches"] <= near), None
    return record


def goal_line(record: dict[str, Any]) -> str:
    """The goal in one line, with the numbers."""
    if record["gap"] is None:
        return f"goal (<= {record['budget']:g} tokens): not measurable yet ({record['why']})"
    ours, theirs, full = record["object_guided"], record["patch_baseline"], record["patches"]
    verdict = f"not measurable yet ({record['why']})" if record["met"] is None else (
        "met" if record["met"] else "not met")
    return (f"goal (<= {record['budget']:g} tokens): {verdict}: {ours['label']} "
            f"{ours['mean']:.1f}±{ours['sd']:.1f} vs {theirs['label']} {theirs['mean']:.1f}±{theirs['sd']:.1f} "
            f"(gap {record['gap']:+.1f}, 2 sd {2 * record['gap_sd']:.1f}; goal >= 10 and > 2 sd), "
            f"{record['below_patches']:.1f} below {full['label']} {full['mean']:.1f} (goal <= 3)")


def write_frontier_json(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    record = {"meta": meta, "composite_of": list(COMPOSITE), "fronts": fronts_of(rows), "goal": goal(rows),
              "variants": rows}
    path.write_text(json.dumps(record, indent=1))
    return path


def frontier_table(rows: list[dict[str, Any]]) -> Table:
    """Variants by visual tokens: the composite and every probe type (mean±sd), * on the front."""
    tab = Table(title="frontier: test accuracy (%) against visual tokens per image, * = Pareto front "
                "(composite = mean of binding, relation, order)", title_justify="left")
    for name in ("variant", "tokens", "comp", *(SHORT.get(c, c) for c in COLUMNS)):
        tab.add_column(name, justify="left" if name == "variant" else "right", no_wrap=True)
    for row in sorted(rows, key=lambda r: r["visual_tokens"]):
        tab.add_row(("* " if row["pareto"] else "  ") + row["label"], f"{row['visual_tokens']:.1f}",
                    _fmt(row["composite"]), *(_fmt(row["accuracy"][c]) for c in COLUMNS))
    return tab


def _panel(ax: Any, rows: list[dict[str, Any]], metric: str, colours: dict[str, Any], big: bool,
           chance: float | None) -> None:
    """Accuracy against tokens: a line per family, error bars = sd over seeds, the front as a dashed step
    (its points circled, and named on the big panel), chance dotted."""
    for family, colour in colours.items():
        points = sorted(((r["visual_tokens"], _metric(r, metric)) for r in rows
                         if r["family"] == family and _metric(r, metric)["mean"] is not None), key=lambda p: p[0])
        if points:
            ax.errorbar([t for t, _ in points], [c["mean"] for _, c in points], yerr=[c["sd"] for _, c in points],
                        color=colour, marker="o", markersize=4, capsize=2, linewidth=1, label=family)
    xy = [(r["visual_tokens"], _metric(r, metric)["mean"]) for r in rows]
    on = sorted((p, r["label"]) for p, r, flag in zip(xy, rows, pareto_front(xy), strict=True) if flag)
    if on:
        ax.step([t for (t, _), _ in on], [a for (_, a), _ in on], where="post", color="black", linestyle="--",
                linewidth=1, label="Pareto front" if big else None)
        ax.scatter([t for (t, _), _ in on], [a for (_, a), _ in on], s=90, facecolors="none", edgecolors="black",
                   zorder=3)
        for (t, a), label in on if big else ():
            ax.annotate(label, (t, a), xytext=(4, 6), textcoords="offset points", fontsize=7)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance" if big else None)
    ticks = [2 ** k for k in range(8) if min(t for t, _ in xy) / 2 < 2 ** k < max(t for t, _ in xy) * 2]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(metric if metric != "composite" else f"composite ({' + '.join(COMPOSITE)})",
                 fontsize=10 if big else 8)
    if big:
        ax.legend(fontsize=7, loc="lower right")


def composite_chance(chance: dict[str, float]) -> dict[str, float]:
    """Chance levels per probe type (`ablate_report.chance_levels`) plus the composite's."""
    return {**chance, **({"composite": statistics.mean(chance[t] for t in COMPOSITE)}
                         if all(t in chance for t in COMPOSITE) else {})}


def frontier_chart(rows: list[dict[str, Any]], out: Path, chance: dict[str, float] | None = None) -> Path:
    """A large composite panel on the left, a small panel per probe type (and overall) on the right;
    `chance` (per metric, e.g. from `composite_chance`) draws a dotted line per panel."""
    families = list(dict.fromkeys(r["family"] for r in rows))
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    colours = {family: cmap(i) for i, family in enumerate(families)}
    small = METRICS[1:]
    cols = (len(small) + 1) // 2
    fig = plt.figure(figsize=(6.5 + 2.6 * cols, 6.0))
    grid = fig.add_gridspec(2, 2 + cols)
    big = fig.add_subplot(grid[:, :2])
    chance = chance or {}
    _panel(big, rows, "composite", colours, big=True, chance=chance.get("composite"))
    big.set_xlabel("visual tokens per image (mean)")
    big.set_ylabel("test accuracy (%)")
    for k, metric in enumerate(small):
        ax = fig.add_subplot(grid[k % 2, 2 + k // 2])
        _panel(ax, rows, metric, colours, big=False, chance=chance.get(metric))
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
