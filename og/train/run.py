"""`run_stage`: train one stage of an OG-LLaVA model, in-process (or under torchrun / deepspeed).

    model, processor = og.build(og.preset("tiny-og"), ...)
    r1 = run_stage("pretrain", model, processor, ["caps.jsonl"], "runs/s1", image_root="img",
                   mask_store=MaskStore("masks"), max_steps=200, activation_checkpointing=False)
    r2 = run_stage("finetune", model, processor, ["chat.jsonl"], "runs/s2", image_root="img",
                   mask_store=MaskStore("masks"), from_stage1="runs/s1", max_steps=200)

A stage given by name takes the values of a training recipe (`og.train.recipes`): `recipe=`
("og-llava", "llava-1.5", "og"), by default the recipe of the preset the model's spec is
(`og` when it is none): batch, accumulation, warmup, max_grad_norm, learning rates, LoRA,
template, padding to square and modality grouping; a `Stage` object is used as it is.
Keyword arguments that are not run_stage's own are `TrainingArguments` overrides on top of
the stage's values. `deepspeed` is a shipped config name (`zero2`,
`zero3`, `zero3_offload`) or a path. The run directory gets `trainables.safetensors` +
`og_train.json` (the stage's weights and what `og export` needs to rebuild the model, and
`layouts`: what the fusion did to the images trained on, also logged as one line),
the processor files, and `checkpoint-N/` directories (resumable with `resume=True`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from transformers import TrainerCallback, TrainingArguments

from og.data.collator import TrainCollator
from og.data.llava_dataset import LlavaDataset
from og.fusion.counts import LayoutCounts
from og.masks.geometry import ImageTransform
from og.train.checkpoint import load_trainables
from og.train.recipes import Recipe, stage_with_recipe
from og.train.stages import CONNECTOR, LoraSettings, Stage, apply_stage
from og.train.trainer import OGTrainer

log = logging.getLogger(__name__)
DEEPSPEED_CONFIGS = ("zero2", "zero3", "zero3_offload")
BASE_DIR = "base"


@dataclass
class TrainResult:
    """What a stage run did."""

    output_dir: Path
    stage: Stage
    model: nn.Module  # the trained model (a PeftModel wrapping the one given when LoRA was added)
    global_step: int
    losses: list[float]  # every logged training loss, in order
    trainable: dict[str, int]  # group -> trainable elements
    data_events: dict[str, int]  # masks_missing, image_unreadable, truncated, skipped_too_long
    event_examples: dict[str, list[str]] = field(default_factory=dict)
    dataset_counts: dict[str, int] = field(default_factory=dict)  # samples, image_missing, masks_missing
    metrics: dict[str, float] = field(default_factory=dict)
    world_size: int = 1
    zero_stage: int | None = None  # the DeepSpeed ZeRO stage, None without DeepSpeed
    layouts: dict[str, Any] = field(default_factory=dict)  # og.fusion.counts.LayoutCounts.summary(), all ranks


def deepspeed_config(name_or_path: str) -> str:
    """Path of a shipped DeepSpeed config (`zero2`, `zero3`, `zero3_offload`) or of a given file."""
    if name_or_path in DEEPSPEED_CONFIGS:
        return str(resources.files("og.train") / "deepspeed" / f"{name_or_path}.json")
    if Path(name_or_path).is_file():
        return str(name_or_path)
    raise FileNotFoundError(f"DeepSpeed config {name_or_path!r} is neither a shipped one "
                            f"({', '.join(DEEPSPEED_CONFIGS)}) nor an existing file")


def training_arguments(stage: Stage, output_dir: str | Path, deepspeed: str | None = None,
                       **overrides: Any) -> TrainingArguments:
    """The stage's recipe + overrides as `TrainingArguments`."""
    kwargs: dict[str, Any] = {**stage.defaults, "learning_rate": stage.lr, "output_dir": str(output_dir),
                              "remove_unused_columns": False, "report_to": "none",
                              # no accelerator: say so, or accelerate sees torchrun's ranks as one process
                              "use_cpu": not torch.accelerator.is_available(),
                              "dataloader_pin_memory": torch.accelerator.is_available()}
    if deepspeed:
        kwargs["deepspeed"] = deepspeed_config(deepspeed)
    kwargs.update(overrides)
    valid = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        import difflib

        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, valid, 1)) else k
                 for k in unknown]
        raise TypeError(f"unknown training arguments: {', '.join(hints)}")
    return TrainingArguments(**kwargs)


def with_padding(processor: Any, pad_to_square: bool | None) -> Any:
    """The processor, or a copy of it that pads images to square as the stage says (None: as it is)."""
    t = processor.transform
    if pad_to_square is None or pad_to_square == t.pad_to_square:
        return processor
    padded = copy.copy(processor)
    padded.transform = ImageTransform(t.image_size, t.mean, t.std, pad_to_square)
    return padded


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def add_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """The model wrapped by PEFT with fresh adapters on its language model (og.model.lora)."""
    from og.model.lora import apply_lora

    targets = None if settings.target == "all-linear" else [t.strip() for t in settings.target.split(",")]
    return apply_lora(model, r=settings.r, alpha=settings.alpha, dropout=settings.dropout, target_modules=targets)


def describe_base(model: nn.Module, processor: Any, output_dir: Path, base: dict[str, Any] | None,
                  is_main: bool) -> dict:
    """Where `og export` finds the frozen weights: given paths, the model's own directory, or a
    copy written to `output_dir/base` (random components have no file to point at)."""
    if base:
        return dict(base)
    source = getattr(getattr(model, "config", None), "_name_or_path", "")
    if source and Path(source, "config.json").is_file():
        return {"dir": str(source)}
    if has_lora(model):
        raise ValueError("the model carries LoRA weights but no base was given; pass base={'dir': ...} "
                         "(a directory saved before LoRA was added)")
    if is_main and not (output_dir / BASE_DIR / "config.json").is_file():
        from og.model.factory import save

        save(model, processor, output_dir / BASE_DIR)
        log.info("no base paths given: saved the frozen base model to %s for export", output_dir / BASE_DIR)
    return {"dir": str(output_dir / BASE_DIR)}


def run_stage(stage: str | Stage, model: nn.Module, processor: Any, data: list | Dataset, output_dir: str | Path,
              *, image_root: str | Path | None = None, mask_store: Any = None, segmenter: Any = None,
              from_stage1: str | Path | None = None, train_llm: bool = False, train_encoder: bool = False,
              lora: LoraSettings | None = None, template: str | None = None, max_length: int | None = 2048,
              strict: bool = False, group_by_modality_length: bool | None = None, resume: bool = False,
              deepspeed: str | None = None, base: dict[str, Any] | None = None, recipe: str | Recipe | None = None,
              callbacks: list[TrainerCallback] | None = None, cache_samples: bool = False,
              cache_encoder_features: bool = False, **training_overrides: Any) -> TrainResult:
    """Train one stage; returns losses, counts and where the weights went (see module doc).
    `cache_samples`: read, plan and tokenize each sample once, not once per epoch (multi-epoch runs
    on small data, e.g. the miniatures; it holds every sample's pixels and tokens in memory).
    `cache_encoder_features`: the frozen encoder runs once per image, not once per epoch
    (`og.train.feature_cache`; it holds every image's features in memory)."""
    stage = stage_with_recipe(stage, recipe, model.config.model_spec).with_flags(
        train_llm=train_llm, train_encoder=train_encoder, lora=lora)
    if cache_encoder_features and "encoder" in stage.train:
        raise ValueError(f"cache_encoder_features needs a frozen encoder, but stage {stage.name!r} trains it; "
                         "leave the encoder frozen or turn the cache off")
    log.info("stage %s: recipe %s", stage.name, stage.recipe)
    if group_by_modality_length is None:
        group_by_modality_length = stage.group_by_modality_length
    output_dir = Path(output_dir)
    args = training_arguments(stage, output_dir, deepspeed, **training_overrides)
    base_info = describe_base(model, processor, output_dir, base, args.should_save)
    processor = with_padding(processor, stage.pad_to_square)  # what this stage's data sees (and saves)
    if stage.lora is not None and not has_lora(model):
        model = add_lora(model, stage.lora)
    if from_stage1 is not None:
        names = load_trainables(model, from_stage1, groups=CONNECTOR)
        log.info("loaded %d connector tensors from stage 1 (%s)", len(names), from_stage1)
    trainable = apply_stage(model, stage)
    template = template or stage.template or processor.chat_template
    dataset = data if isinstance(data, Dataset) else LlavaDataset(
        data, processor, template=template, image_root=image_root, mask_store=mask_store, segmenter=segmenter,
        max_length=max_length, strict=strict, seed=args.seed, cache_samples=cache_samples)
    info = {"stage": stage.name, "spec": model.config.model_spec.to_dict(), "trains": list(stage.train),
            "saves": list(stage.saves), "lora": dataclasses.asdict(stage.lora) if stage.lora else None,
            "template": template, "max_length": max_length, "base": base_info, "recipe": stage.recipe,
            "pad_to_square": processor.transform.pad_to_square, "group_by_modality_length": group_by_modality_length,
            "cache_encoder_features": cache_encoder_features,
            "from_stage1": str(from_stage1) if from_stage1 is not None else None, "trainable": trainable}
    trainer = OGTrainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks, stage=stage, info=info,
                        data_collator=TrainCollator(processor.tokenizer.pad_token_id, max_length),
                        processor=processor, group_by_modality_length=group_by_modality_length,
                        cache_encoder_features=cache_encoder_features)
    accelerate_env = {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}
    try:
        output = trainer.train(resume_from_checkpoint=True if resume else None)
        info["layouts"] = layout_summary(trainer)
        trainer.save_model()
    finally:  # accelerate leaves ACCELERATE_USE_DEEPSPEED=true behind: a later stage in this process may not use it
        for key in [k for k in os.environ if k.startswith("ACCELERATE_")]:
            if key not in accelerate_env:
                del os.environ[key]
        os.environ.update(accelerate_env)
    if trainer.feature_cache is not None:
        cache = trainer.feature_cache
        log.info("encoder cache: %d images encoded once, %d times served from memory", cache.misses, cache.hits)
    events = dict(trainer.data_events)
    if events:
        log.warning("data events over the run: %s (first: %s)", events, trainer.event_examples)
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    zero = trainer.accelerator.state.deepspeed_plugin.zero_stage if trainer.is_deepspeed_enabled else None
    return TrainResult(output_dir, stage, model, trainer.state.global_step, losses, trainable, events,
                       dict(trainer.event_examples), dict(getattr(dataset, "counts", {})), dict(output.metrics),
                       args.world_size, zero, info["layouts"])


def layout_summary(trainer: OGTrainer) -> dict[str, Any]:
    """The fusion counters of every rank's batches, merged and logged once (a warning when the
    budget dropped masks)."""
    from accelerate.utils import gather_object

    counts = trainer.layout_counts
    if trainer.args.world_size > 1:
        counts = LayoutCounts().merge(gather_object([counts]))  # every rank's, this one included
    if trainer.args.should_log and counts.images:
        (log.warning if counts.over_budget else log.info)("%s", counts.line())
    return counts.summary()


def leave_process_group() -> None:
    """Under torchrun, all ranks leave the process group together once the caller's last stage is done
    (a group left to interpreter exit tears down with SIGABRT now and then); a no-op in one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
