"""What an ablation is: its variants (a spec + the masks it reads), its data, its schedule, the
`--vary` grammar that builds the grid, and the mask stores it builds on demand."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from og.eval.suite import BenchRun
from og.spec import ModelSpec, SegmenterSpec, split_top

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class Variant:
    """One model variant of an ablation: a label, its spec, and the mask store it reads."""

    label: str
    spec: ModelSpec
    masks: str | None = None  # key into AblationData.stores; None: the variant needs no masks


@dataclass
class AblationData:
    """Training files, images, benchmarks and the mask stores the variants may read."""

    stage1: list[str]
    stage2: list[str]
    image_root: Path
    benches: dict[str, BenchRun]  # label -> benchmark run (e.g. "test", "train")
    stores: dict[str, Path] = field(default_factory=dict)  # masks name -> MaskStore directory
    text_only: list[str] = field(default_factory=list)  # LLaVA-format text-only data for the LM warm-up
    tokenizer: Any = None  # a tokenizer or its directory (None: the LLM's own)
    llm_path: str | None = None
    encoder_path: str | None = None
    encoder: dict[str, Any] = field(default_factory=dict)  # how the encoder at encoder_path was made (a report)


@dataclass(frozen=True)
class Schedule:
    """How each variant is trained (the same for every variant of an ablation)."""

    stage1_epochs: float = 1.0
    stage2_epochs: float = 1.0
    batch_size: int = 16
    stage1_lr: float = 1e-3
    stage2_lr: float = 1e-4
    train_llm_stage1: bool = False  # a random tiny LLM must learn language: train it in stage 1
    lm_epochs: float = 0.0  # text-only warm-up of a random LLM (stands in for a pretrained one)
    train_encoder_stage1: bool = False  # also train the vision encoder in stage 1 (random tiny encoders)
    train_llm_stage2: bool = False  # stage 2 trains the whole LLM instead of LoRA (LLaVA-1.5's default)
    lora_r: int = 128
    lora_alpha: int = 256
    max_length: int = 2048
    stage2_lr_scheduler: str = "cosine"  # transformers' lr_scheduler_type of stage 2 (LLaVA's: cosine)
    stage2_max_grad_norm: float = 1.0  # gradient clipping in stage 2 (LLaVA's: 1.0; 0 = none)
    stage2_accumulation: int = 1  # gradient accumulation in stage 2: batch_size x this samples an update
    stage2_group_by_length: bool = False  # stage 2's updates split into micro-batches of like lengths (less padding)

    def __post_init__(self) -> None:
        from transformers import SchedulerType

        names = [t.value for t in SchedulerType]
        if self.stage2_accumulation < 1:
            raise ValueError(f"stage2_accumulation={self.stage2_accumulation}; use a count >= 1")
        if self.stage2_lr_scheduler not in names:
            raise ValueError(f"stage2_lr_scheduler={self.stage2_lr_scheduler!r}; use one of {names}")


def parse_vary(flags: list[str]) -> dict[str, list[str]]:
    """`["fusion=masktoken,maskpool", "segmenter=oracle,slic"]` -> {part: [values]}."""
    vary: dict[str, list[str]] = {}
    for flag in flags:
        part, eq, values = flag.partition("=")
        if not eq or not values:
            raise ValueError(f"--vary {flag!r}: write part=value1,value2 (e.g. fusion=masktoken,maskpool)")
        vary[part.strip()] = [v.strip() for v in split_top(values, ",") if v.strip()]  # commas inside (...) stay
    return vary


def grid(base: ModelSpec, vary: dict[str, list[str]], stores: dict[str, Path]) -> list[Variant]:
    """Every combination of the varied parts. A segmenter value naming a store ("oracle") reads
    that store; any other value is a segmenter spec whose store `ensure_store` builds."""
    names = list(vary)
    variants = []
    for values in itertools.product(*(vary[n] for n in names)):
        spec, masks = base, None
        for part, value in zip(names, values, strict=True):
            if part == "segmenter" and value in stores:
                masks = value
            else:
                spec = spec.replace(**{part: value})
                masks = spec.segmenter.id if part == "segmenter" else masks
        if spec.uses_masks and masks is None:
            masks = spec.segmenter.id
        label = "+".join(f"{v}" for v in values) or "base"
        variants.append(Variant(label, spec, masks if spec.uses_masks else None))
    return variants


def ensure_store(name: str, data: AblationData, out_dir: Path) -> Path:
    """The store called `name`, building it over the data's images when it names a segmenter."""
    if name in data.stores:
        return data.stores[name]
    from og.masks.build import build_store
    from og.registry import SEGMENTERS

    spec = SegmenterSpec.parse(name)
    segmenter = SEGMENTERS.get(spec.name).from_spec(spec)
    keys = sorted(str(p.relative_to(data.image_root)) for p in data.image_root.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES)
    path = out_dir / "masks" / slug(name)
    items = [(k, (lambda k=k: Image.open(data.image_root / k).convert("RGB"))) for k in keys]
    summary = build_store(path, items, segmenter, image_root=data.image_root)
    log.info("built %s masks for %d images (%d failed) in %s", name, summary.written, summary.failed, path)
    data.stores[name] = path
    return path


def slug(label: str) -> str:
    """A folder name for a variant label or a segmenter spec id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
