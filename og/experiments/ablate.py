"""Ablations: train and evaluate a list of variants over seeds, resumably, through the registry.

A `Variant` is a `ModelSpec` plus the name of the mask store it reads. `run_ablation` trains
each (variant, seed) through stage 1 and stage 2 (`og.train.run_stage`), evaluates it on the
benchmarks of the `AblationData` (`og.eval.suite.run_suite`, likelihood mode, no parsing), and
writes `runs/<label>/seed<k>/result.json`; a finished (variant, seed) is read back instead of
retrained, so a killed run resumes where it stopped. `og quickstart` is one such ablation on
the built-in `shapes` data; `og ablate` builds the grid from `--vary part=a,b` flags.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image
from transformers import TrainerCallback

from og.experiments.ablate_grid import AblationData, Schedule, Variant, ensure_store, grid, parse_vary, slug
from og.experiments.records import as_written, jsonable
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
        if as_written(done.get("schedule", {}), asdict(Schedule())) != jsonable(asdict(schedule)):
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
                  activation_checkpointing=False, dataloader_num_workers=0, cache_samples=True,
                  cache_encoder_features=True)
    report = on_step or (lambda phase, step, total: None)
    start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "w") as logfile, redirect_stdout(logfile), redirect_stderr(logfile):
        if schedule.lm_epochs > 0:
            model = warm_up(model, processor, data, schedule, seed, out_dir.parents[2] / "warmup", report, common)
        first = run_stage("pretrain", model, processor, data.stage1, out_dir / "stage1",
                          train_llm=schedule.train_llm_stage1, train_encoder=schedule.train_encoder_stage1,
                          num_train_epochs=schedule.stage1_epochs,
                          learning_rate=schedule.stage1_lr, callbacks=[_StepReport("stage 1", report)],
                          **{**common, "cache_encoder_features": not schedule.train_encoder_stage1})
        second = run_stage("finetune", first.model, processor, data.stage2, out_dir / "stage2",
                           lora=None if schedule.train_llm_stage2 else LoraSettings(r=schedule.lora_r,
                                                                                    alpha=schedule.lora_alpha,
                                                                                    dropout=0.0),
                           train_llm=schedule.train_llm_stage2,
                           num_train_epochs=schedule.stage2_epochs, learning_rate=schedule.stage2_lr,
                           lr_scheduler_type=schedule.stage2_lr_scheduler, max_grad_norm=schedule.stage2_max_grad_norm,
                           callbacks=[_StepReport("stage 2", report)],
                           group_by_modality_length=schedule.stage2_group_by_length,
                           **{**common, "gradient_accumulation_steps": schedule.stage2_accumulation})
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


def warm_up(model: Any, processor: Any, data: AblationData, schedule: Schedule, seed: int, cache: Path,
            report: Any, common: dict[str, Any]) -> Any:
    """The text-only LM warm-up, run once per (seed, LLM, encoder, tokenizer, text data, schedule) and
    shared by every variant: it trains the language model alone on text, so it does not depend on the
    fusion (the LLM is built before the fusion, from the same seed). Kept as safetensors under
    `cache/<key digest>/seed<k>/` with its key; a variant finding it loads it instead of training."""
    from safetensors.torch import load_model, save_model

    from og.train.run import run_stage

    spec = model.config.model_spec
    key = {"llm": spec.llm.id, "encoder": spec.encoder.id, "encoder_path": str(data.encoder_path),
           "llm_path": str(data.llm_path), "tokenizer": str(getattr(processor.tokenizer, "name_or_path", "")),
           "vocab": len(processor.tokenizer), "text_only": [_digest(str(f)) for f in data.text_only],
           "lm_epochs": schedule.lm_epochs, "lr": schedule.stage1_lr, "batch_size": schedule.batch_size,
           "max_length": schedule.max_length, "seed": seed}
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    folder = cache / digest / f"seed{seed}"
    weights = folder / "language_model.safetensors"
    if weights.is_file():
        load_model(model.language_model, weights)
        return model
    model = run_stage("pretrain", model, processor, data.text_only, folder / "stage0", train_llm=True,
                      template="tokenizer", num_train_epochs=schedule.lm_epochs, learning_rate=schedule.stage1_lr,
                      callbacks=[_StepReport("LM warm-up", report)], **common).model
    (folder / "key.json").write_text(json.dumps(key, indent=1))
    tmp = weights.with_suffix(f".{os.getpid()}.tmp")
    save_model(model.language_model, str(tmp))
    tmp.replace(weights)  # atomic: a parallel or killed run never reads half a file
    return model


def _digest(source: str) -> str:
    """A data source as its name and, for a file, a digest of its bytes (an edited file is another key)."""
    path = Path(source)
    return f"{source}:{hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()}" if path.is_file() else source


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
                 out_dir: Path, on_done: Any = None, on_step: Any = None, jobs: int = 1,
                 threads: int = 1) -> list[dict[str, Any]]:
    """Every (variant, seed); `on_step(variant, seed, phase, step, total)` during training and
    `on_done(result)` after each (for progress). `jobs` > 1 runs them on that many worker processes
    of `threads` torch threads each (`og.experiments.ablate_jobs`); results in the same order."""
    tasks = [(variant, seed, out_dir / "runs" / slug(variant.label) / f"seed{seed}")
             for variant in variants for seed in seeds]
    if jobs > 1:
        from og.experiments.ablate_jobs import run_parallel

        for variant in variants:  # stores built here, once, not by two workers at a time
            if variant.masks:
                ensure_store(variant.masks, data, out_dir)
        return run_parallel(tasks, data, schedule, jobs, threads, on_done=on_done, on_step=on_step)
    results = []
    for variant, seed, folder in tasks:
        step = (lambda phase, k, n, v=variant, s=seed: on_step(v, s, phase, k, n)) if on_step else None
        result = run_one(variant, data, schedule, seed, folder, on_step=step)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


__all__ = ["AblationData", "Schedule", "Variant", "ensure_store", "grid", "parse_vary", "run_ablation", "run_one"]
