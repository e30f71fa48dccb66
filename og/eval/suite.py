"""Evaluating one answerer on several benchmarks at once: what `og eval` and the quickstart call.

    from og.eval.suite import BenchRun, run_suite, mask_source_for
    answerer = OGAnswerer.load("runs/og")
    record = run_suite(answerer, [BenchRun("mmvp", "data/MMVP", options={"fix_known_errors": True})],
                       mode="likelihood", masks=mask_source_for(answerer, store="masks/mmvp"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from og.eval.answer import Answerer, check_mode
from og.eval.mask_source import MaskSource
from og.eval.runner import evaluate, results_record
from og.registry import BENCHMARKS


@dataclass
class BenchRun:
    """One benchmark to run: its registry name, data path, optional images folder and options."""

    name: str
    data: str | Path
    images: str | Path | None = None
    options: dict[str, Any] = field(default_factory=dict)


def mask_source_for(answerer: Answerer, store: str | Path | None = None, segmenter: str | None = None,
                    device: str | None = None) -> MaskSource | None:
    """The masks an answerer needs: a store, else a named segmenter, else the model's own segmenter."""
    if store is not None and segmenter is not None:
        raise ValueError("give either a mask store or a segmenter, not both")
    if not answerer.needs_masks:
        return None
    if store is not None:
        return MaskSource.from_store(store)
    if segmenter is not None:
        return MaskSource.from_segmenter(segmenter, device=device)
    spec = getattr(getattr(getattr(answerer, "model", None), "config", None), "model_spec", None)
    if spec is None or spec.segmenter.name == "none":
        raise ValueError("the model uses masks but names no segmenter; pass a mask store (--masks) or --segmenter")
    return MaskSource.from_segmenter(spec.segmenter.id, device=device)


def run_suite(answerer: Answerer, runs: list[BenchRun], mode: str = "generate", batch_size: int = 8,
              masks: MaskSource | None = None, limit: int | None = None, max_new_tokens: int = 16,
              progress: bool = False) -> dict[str, Any]:
    """Read, run and score every benchmark; the results record (see `og.eval.report.write_results`)."""
    check_mode(mode)
    if limit is not None and limit < 1:
        raise ValueError(f"limit {limit}; use a positive number of items")
    results = []
    counts = getattr(answerer, "layout_counts", None)  # og.fusion.counts.LayoutCounts of an og answerer
    for run in runs:
        bench = BENCHMARKS.get(run.name)()
        items = bench.read(run.data, run.images, **run.options)
        if limit is not None:
            items = items[:limit]
        if counts is not None:
            counts.take()  # count this benchmark's images only
        result = evaluate(bench, items, answerer, mode, batch_size, masks, max_new_tokens, progress)
        if counts is not None:
            result["layouts"] = counts.take()  # masks dropped / empty, patches in no token, tokens per image
        result["data"] = str(run.data)
        result["options"] = {**bench.OPTIONS, **run.options}
        results.append(result)
    return results_record(results, answerer, mode, batch_size, masks, limit=limit)
