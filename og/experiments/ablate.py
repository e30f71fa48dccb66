"""Ablations: train and evaluate a list of variants over seeds, resumably, through the registry.

A `Variant` is a `ModelSpec` plus the name of the mask store it reads. `run_ablation` trains
each (variant, seed) through stage 1 and stage 2 (`og.train.run_stage`), evaluates it on the
benchmarks of the `AblationData` (`og.eval.suite.run_suite`, likelihood mode, no parsing), and
writes `runs/<label>/seed<k>/result.json`; a finished (variant, seed) is read back instead of
retrained, so a killed run resumes where it stopped. `og quickstart` is one such ablation on
the built-in `shapes` data; `og ablate` builds the grid from `--vary part=a,b` flags.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image
from transformers import TrainerCallback

from og.experiments.ablate_grid import AblationData, Schedule, Variant, ensure_store, grid, parse_vary, slug
from og.spec import SegmenterSpec

log = logging.getLogger(__name__)


class _StepReport(TrainerCallback):
    """Tells `on_step(phase, step, total)` after every training step."""

    def __init__(self, phase: str, on_step: Any) -> None:
        self.phase, self.on_step = phase, on_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.on_step(self.phase, state.global_step, state.max_steps)


def run_one(variant: Variant, data: AblationData, schedule: Schedule, seed: int, out_dir: Path,
            on_step: Any = None) -> dict[str, Any]:
    """Train (stage 1, stage 2) and evaluate one variant with one seed; resumable per result file.
    The Trainer's own logging goes to `out_dir/train.log`; `on_step(phase, step, total)` reports progress."""
    result_path = out_dir / "result.json"
    if result_path.is_file():  # resume: a finished run is read back, if it was trained the same way
        done = json.loads(result_path.read_text())
        if done.get("schedule") != json.loads(json.dumps(asdict(schedule))):
            raise ValueError(f"{out_dir} was trained with another schedule ({done.get('schedule')}); "
                             "pass another --out or remove it")
        return done
    import transformers

    import og
    from og.eval.mask_source import MaskSource
    from og.eval.og_answerer import OGAnswerer
    from og.eval.suite import run_suite
    from og.masks.store import MaskStore
    from og.train.run import run_stage
    from og.train.stages import LoraSettings

    transformers.set_seed(seed)
    store_dir = ensure_store(variant.masks, data, out_dir.parents[2]) if variant.masks else None  # out/runs/label/seed
    store = MaskStore(store_dir) if store_dir is not None else None
    spec = variant.spec  # the checkpoint names the masks it was trained on: the store's segmenter
    if store is not None and store.spec:
        spec = spec.replace(segmenter=SegmenterSpec.parse(str(store.spec)))
    model, processor = og.build(spec, tokenizer=data.tokenizer, llm_path=data.llm_path,
                                encoder_path=data.encoder_path, mask_store=store, chat_template="tokenizer")
    common = dict(image_root=data.image_root, mask_store=store, max_length=schedule.max_length, seed=seed,
                  per_device_train_batch_size=schedule.batch_size, gradient_accumulation_steps=1,
                  save_strategy="no", report_to=[], disable_tqdm=True, logging_steps=10,
                  activation_checkpointing=False, dataloader_num_workers=0)
    report = on_step or (lambda phase, step, total: None)
    start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "w") as logfile, redirect_stdout(logfile), redirect_stderr(logfile):
        if schedule.lm_epochs > 0:
            model = run_stage("pretrain", model, processor, data.text_only, out_dir / "stage0", train_llm=True,
                              template="tokenizer", num_train_epochs=schedule.lm_epochs,
                              learning_rate=schedule.stage1_lr, callbacks=[_StepReport("LM warm-up", report)],
                              **common).model
        first = run_stage("pretrain", model, processor, data.stage1, out_dir / "stage1",
                          train_llm=schedule.train_llm_stage1, train_encoder=schedule.train_encoder_stage1,
                          num_train_epochs=schedule.stage1_epochs,
                          learning_rate=schedule.stage1_lr, callbacks=[_StepReport("stage 1", report)], **common)
        second = run_stage("finetune", first.model, processor, data.stage2, out_dir / "stage2",
                           lora=LoraSettings(r=schedule.lora_r, alpha=schedule.lora_alpha, dropout=0.0),
                           num_train_epochs=schedule.stage2_epochs, learning_rate=schedule.stage2_lr,
                           callbacks=[_StepReport("stage 2", report)], **common)
    train_seconds = time.time() - start
    report("eval", 0, 1)
    answerer = OGAnswerer(second.model.eval(), processor)
    masks = MaskSource.from_store(store_dir) if store_dir is not None else None
    scores, predictions = {}, {}
    for label, bench in data.benches.items():
        record = run_suite(answerer, [bench], mode="likelihood", batch_size=32, masks=masks)
        run = record["benchmarks"][bench.name]
        scores[label] = run["scores"]
        predictions[label] = run.get("predictions", [])
    result = {
        "label": variant.label, "spec": spec.id, "masks": variant.masks, "seed": seed,
        "schedule": asdict(schedule), "scores": scores, "predictions": predictions,
        "visual_tokens": _token_stats(processor, store, data),
        "losses": {"stage1": first.losses, "stage2": second.losses}, "train_seconds": round(train_seconds, 1),
        "steps": {"stage1": first.global_step, "stage2": second.global_step},
        "data_events": {"stage1": {**first.dataset_counts, **first.data_events},
                        "stage2": {**second.dataset_counts, **second.data_events}},
    }
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_path)  # atomic: a killed run never leaves a half-written result
    return result


def _token_stats(processor: Any, store: Any, data: AblationData, n: int = 64) -> dict[str, float]:
    """Visual tokens per image (mean / max) over the first `n` test images."""
    bench = next(iter(data.benches.values()))
    rows = [json.loads(line) for line in Path(bench.data, f"{bench.options.get('split', 'test')}.jsonl")
            .read_text().splitlines()]
    keys = list(dict.fromkeys(r["image"] for r in rows))[:n]
    counts = []
    for key in keys:
        masks = store.get(key) if store is not None else None
        _, layout = processor.prepare_image(Image.open(Path(bench.data) / key).convert("RGB"), masks)
        counts.append(len(layout))
    return {"mean": sum(counts) / len(counts), "max": max(counts), "images": len(counts)}


def run_ablation(variants: list[Variant], data: AblationData, schedule: Schedule, seeds: list[int],
                 out_dir: Path, on_done: Any = None, on_step: Any = None) -> list[dict[str, Any]]:
    """Every (variant, seed); `on_step(variant, seed, phase, step, total)` during training and
    `on_done(result)` after each (for progress)."""
    results = []
    for variant in variants:
        for seed in seeds:
            step = (lambda phase, k, n, v=variant, s=seed: on_step(v, s, phase, k, n)) if on_step else None
            result = run_one(variant, data, schedule, seed, out_dir / "runs" / slug(variant.label) / f"seed{seed}",
                             on_step=step)
            results.append(result)
            if on_done is not None:
                on_done(result)
    return results


__all__ = ["AblationData", "Schedule", "Variant", "ensure_store", "grid", "parse_vary", "run_ablation", "run_one"]
