"""`og quickstart --frontier`: the token-efficiency frontier on the quickstart's `shapes` data.

Each fusion is swept over visual-token budgets (patches; `patchpool` k = 2, 3, 4; `prune` keep
4, 8, 16, 32 for each `by`; `masktoken` and `roialign` at max_tokens 8, 16, 32 and unbounded;
`maskpool`). Every entry is a `Variant` of the quickstart's base spec, trained and scored
through `run_ablation` (resumable: finished (variant, seed) runs are read back) on the data
`prepare_data` writes (the quickstart's own, with whatever encoder it prepares). An entry whose
fusion is not registered (or does not take the entry's switches) is skipped with a notice, so
the sweep picks fusions up as they land. A budget that no image reaches (every image has fewer
tokens unbounded) is the unbounded variant itself: it is run once, under the unbounded label.
Writes `frontier/frontier.json` and `frontier/frontier.png` (`og.experiments.frontier_report`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from og.experiments.ablate import AblationData, Variant, run_ablation
from og.experiments.ablate_grid import IMAGE_SUFFIXES
from og.spec import PRUNE_BY, ModelSpec, SpecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One point of the sweep: a label (its run folder), a family (its line in the chart), a fusion id."""

    label: str
    family: str
    fusion: str  # a FusionSpec id
    masks: bool = False  # the fusion reads the oracle object masks


def _budget(n: int | None) -> str:
    return "all" if n is None else str(n)


def _with_budget(fusion: str, n: int | None) -> str:
    """`masktoken(min_one_patch=true)` + 8 -> `masktoken(min_one_patch=true,max_tokens=8)`."""
    if n is None:
        return fusion
    name, _, opts = fusion.partition("(")
    opts = opts.rstrip(")")
    return f"{name}({opts + ',' if opts else ''}max_tokens={n})"


BUDGETS = (8, 16, 32, None)  # visual tokens per image for the object-guided fusions (None: unbounded)
SWEEP: tuple[Entry, ...] = (
    Entry("patches", "patches", "patches"),
    *(Entry(f"patchpool-k{k}", "patchpool", f"patchpool(k={k})") for k in (2, 3, 4)),
    *(Entry(f"prune-{by}-{n}", f"prune {by}", f"prune(keep={n},by={by})") for by in PRUNE_BY for n in (4, 8, 16, 32)),
    *(Entry(f"masktoken-{_budget(n)}", "masktoken", _with_budget("masktoken(min_one_patch=true)", n), masks=True)
      for n in BUDGETS),
    *(Entry(f"roialign-{_budget(n)}", "roialign", _with_budget("roialign", n), masks=True) for n in BUDGETS),
    Entry("maskpool", "maskpool", "maskpool(min_one_patch=true)", masks=True),
)


def frontier_variants(sweep: tuple[Entry, ...] | list[Entry], base: ModelSpec,
                      masks: str = "oracle") -> tuple[list[tuple[Entry, Variant]], list[tuple[Entry, str]]]:
    """The runnable (entry, variant) pairs, and the skipped entries with the one-line reason."""
    from og.registry import FUSIONS

    runnable, skipped = [], []
    registered = FUSIONS.list()
    for entry in sweep:
        name = entry.fusion.partition("(")[0]
        if name not in registered:
            skipped.append((entry, f"fusion {name!r} is not registered"))
            continue
        try:
            spec = base.replace(fusion=entry.fusion, **({} if entry.masks else {"segmenter": "none"}))
        except SpecError as err:
            skipped.append((entry, str(err)))
            continue
        runnable.append((entry, Variant(entry.label, spec, masks if entry.masks else None)))
    return runnable, skipped


def skip_notice(skipped: list[tuple[Entry, str]], total: int) -> str:
    """`frontier: skipped 7 of 25 sweep entries: 3 x fusion 'patchpool' is not registered; ...`."""
    reasons: dict[str, int] = {}
    for _, reason in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = [f"{count} x {reason}" for reason, count in reasons.items()]
    return f"frontier: skipped {len(skipped)} of {total} sweep entries: " + "; ".join(parts)


def most_tokens(variant: Variant, data: AblationData) -> int:
    """The most visual tokens any image of the data (train and test) gets under `variant`: the
    processor's CPU layouts only, through the same `og.build` a training run uses."""
    import og
    from og.masks.store import MaskStore

    store = MaskStore(data.stores[variant.masks]) if variant.masks else None
    _, processor = og.build(variant.spec, tokenizer=data.tokenizer, llm_path=data.llm_path,
                            encoder_path=data.encoder_path, mask_store=store, chat_template="tokenizer")
    keys = store.keys() if store is not None else sorted(
        str(p.relative_to(data.image_root)) for p in data.image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    most = 0
    for key in keys:
        with Image.open(data.image_root / key) as image:
            masks = processor.masks_for(image, key, stored=True) if store is not None else None
            most = max(most, len(processor.prepare_image(image, masks, key=key)[1]))
    return most


def unreached_budgets(variants: list[Variant], data: AblationData) -> dict[str, tuple[str, int]]:
    """Budgeted variants whose budget no image reaches: label -> (the label of the same variant
    unbounded, the most tokens an image gets there). Such a variant is its unbounded twin, run once."""
    by_spec = {v.spec: v for v in variants}
    most: dict[str, int] = {}
    twins = {}
    for v in variants:
        budget = v.spec.fusion.max_tokens
        twin = by_spec.get(v.spec.replace(fusion=replace(v.spec.fusion, max_tokens=None)))
        if budget is None or twin is None or twin.masks != v.masks:
            continue
        if twin.label not in most:
            most[twin.label] = most_tokens(twin, data)
        if budget >= most[twin.label]:
            twins[v.label] = (twin.label, most[twin.label])
    return twins


def run_frontier(out: str | Path = "runs/quickstart", fast: bool = False, seeds: int = 3,
                 sweep: tuple[Entry, ...] | list[Entry] = SWEEP, notify: Callable[[str], None] | None = None,
                 on_done: Any = None, on_step: Any = None, on_encoder_step: Any = None, jobs: int = 1,
                 threads: int = 1, encoder_threads: int | None = None) -> dict[str, Any]:
    """Prepare the quickstart's data in `out`, run the sweep into `out/frontier`; returns
    {"rows", "results", "skipped", "twins", "goal", "encoder", "paths"}. `notify(line)` reports skipped entries
    and budgets no image reaches (default: the log); `on_encoder_step` the encoder pretraining's progress;
    `jobs` runs side by side (`run_ablation`)."""
    from og.experiments import frontier_report as report
    from og.experiments.ablate_report import chance_levels
    from og.experiments.quickstart import BASE, SCENES, SIZES, _claim
    from og.experiments.quickstart_data import prepare_data

    out = Path(out)
    size = SIZES["fast" if fast else "default"]
    _claim(out, {"size": "fast" if fast else "default", **asdict(size), "scenes": asdict(SCENES)})
    runnable, skipped = frontier_variants(sweep, BASE)
    if skipped:
        (notify or log.warning)(skip_notice(skipped, len(sweep)))
    if not runnable:
        raise ValueError(f"none of the {len(sweep)} sweep entries can run: {skip_notice(skipped, len(sweep))}")
    # the quickstart's data and encoder
    data = prepare_data(out, size, on_encoder_step=on_encoder_step, encoder_threads=encoder_threads)
    data = replace(data, benches={"test": data.benches["test"]})  # the frontier reports the test split only
    runs_dir = out / "frontier"
    twins = unreached_budgets([v for _, v in runnable], data)
    if twins:
        (notify or log.warning)(f"frontier: {len(twins)} budgets no image reaches run once, as the unbounded variant: "
                                + "; ".join(f"{a} = {b} (at most {n} tokens an image)" for a, (b, n) in twins.items()))
    variants = [v for _, v in runnable if v.label not in twins]
    results = run_ablation(variants, data, size.schedule, list(range(seeds)), runs_dir, on_done=on_done,
                           on_step=on_step, jobs=jobs, threads=threads)
    rows = report.frontier_rows(results, {v.label: e.family for e, v in runnable})
    test_rows = [json.loads(line) for line in (data.image_root / "test.jsonl").read_text().splitlines()]
    chance = report.composite_chance(chance_levels(test_rows))
    meta = {"size": "fast" if fast else "default", "schedule": asdict(size.schedule), "seeds": seeds,
            "base": BASE.id, "tokens": "visual tokens per image, mean over the first 64 test images",
            "sweep": [asdict(e) for e in sweep], "chance": chance, "encoder": data.encoder,
            "skipped": [{"label": e.label, "fusion": e.fusion, "reason": why} for e, why in skipped],
            "same_as_unbounded": {a: {"label": b, "most_tokens": n} for a, (b, n) in twins.items()}}
    paths = {"frontier": report.write_frontier_json(runs_dir / "frontier.json", rows, meta),
             "chart": report.frontier_chart(rows, runs_dir / "frontier.png", chance=chance)}
    return {"rows": rows, "results": results, "skipped": skipped, "twins": twins, "goal": report.goal(rows),
            "encoder": data.encoder, "paths": paths}
