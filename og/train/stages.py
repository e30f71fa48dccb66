"""The training stages as data: what each trains, at which learning rate, and what it saves.

| stage | trains | lr (connector) | template | saves |
|---|---|---|---|---|
| `pretrain` | projector, fusion (begin-of-mask token), position tables | 1e-3 | `plain` | connector |
| `finetune` | connector + LoRA r 128 / alpha 256 / dropout 0.05, all LLM linears | 1e-4 (= lr) | model's | both |
| `encoder` | vision encoder + connector ("stage 0", for a random tiny encoder) | 1e-3 | `plain` | both |

Flags on any stage: `train_llm` (the whole LLM instead of LoRA), `train_encoder`. Parameter
groups name the model's submodules (`OGLlavaForConditionalGeneration`: `encoder`, `fusion`,
`position`, `projector`, `language_model`); LoRA weights are the `lora_` parameters PEFT adds
to the language model (`og.model.lora.apply_lora`; names are taken without PEFT's wrapper
prefix). The connector groups use `connector_lr` (LLaVA's `mm_projector_lr`).
This table is og's own default recipe (`og`: one epoch, 8 x 4 accumulation per device, cosine
schedule with 3% warmup, max_grad_norm 1.0, no weight decay, gradient checkpointing); the
published recipes of the presets (`og-llava*`, `llava-1.5*`) replace its values per stage
(`og.train.recipes`), including the template, padding to square and modality grouping.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from torch import nn

log = logging.getLogger(__name__)

CONNECTOR = ("projector", "fusion", "position")
GROUP_MODULES = {"projector": "projector", "fusion": "fusion", "position": "position",
                 "encoder": "encoder", "llm": "language_model", "lora": "language_model"}
GROUPS = tuple(GROUP_MODULES)
RECIPE: dict[str, Any] = {
    "num_train_epochs": 1, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4,
    "lr_scheduler_type": "cosine", "warmup_steps": 0.03, "max_grad_norm": 1.0, "weight_decay": 0.0,
    "activation_checkpointing": True,
    "save_strategy": "steps", "save_steps": 500, "save_total_limit": 2, "logging_steps": 1,
}


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the language model (PEFT); `target`: "all-linear" (every linear layer of the LLM
    but the LM head) or comma-separated module names ("q_proj,v_proj")."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target: str = "all-linear"


@dataclass(frozen=True)
class Stage:
    """One training stage."""

    name: str
    description: str
    train: tuple[str, ...]  # parameter groups trained (GROUPS)
    lr: float
    connector_lr: float | None = None  # lr of the projector / fusion / position groups; None = lr
    template: str | None = None  # chat template of the data; None = the model's own
    lora: LoraSettings | None = None
    saves: tuple[str, ...] = ()  # groups written to trainables.safetensors
    defaults: dict[str, Any] = field(default_factory=lambda: dict(RECIPE))  # TrainingArguments
    pad_to_square: bool | None = None  # images padded to square in this stage; None: the processor's setting
    group_by_modality_length: bool = False  # the default of run_stage's group_by_modality_length
    recipe: str = "og"  # the recipe these values come from (og.train.recipes)

    def with_flags(self, train_llm: bool = False, train_encoder: bool = False,
                   lora: LoraSettings | None = None) -> Stage:
        """The stage with the whole LLM trained (instead of LoRA), the encoder trained too, or
        other LoRA settings."""
        if lora is not None and self.lora is None:
            raise ValueError(f"stage {self.name!r} trains no LoRA; LoRA settings apply to: "
                             f"{', '.join(n for n, s in STAGES.items() if s.lora)}")
        train, lora_s = list(self.train), lora or self.lora
        if train_llm:
            train, lora_s = [g for g in train if g != "lora"] + ["llm"], None
        if train_encoder and "encoder" not in train:
            train.append("encoder")
        saves = tuple(dict.fromkeys([*self.saves, *train]))
        return dataclasses.replace(self, train=tuple(train), lora=lora_s,
                                   saves=tuple(g for g in saves if g in train))


STAGES: dict[str, Stage] = {
    "pretrain": Stage("pretrain", "stage 1: align the connector on image-caption data",
                      train=CONNECTOR, lr=1e-3, template="plain", saves=CONNECTOR),
    "finetune": Stage("finetune", "stage 2: instruction tuning, connector + LoRA on the LLM",
                      train=(*CONNECTOR, "lora"), lr=1e-4, lora=LoraSettings(),
                      saves=(*CONNECTOR, "lora")),
    "encoder": Stage("encoder", "stage 0: train the vision encoder with the connector (random encoders)",
                     train=("encoder", *CONNECTOR), lr=1e-3, template="plain", saves=("encoder", *CONNECTOR)),
}


def get_stage(name: str | Stage) -> Stage:
    if isinstance(name, Stage):
        return name
    if name not in STAGES:
        raise ValueError(f"unknown training stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[name]


PEFT_PREFIX = "base_model.model."  # parameter names inside a PeftModel wrapper


def canonical(name: str) -> str:
    """A parameter's name in the bare model (PEFT's wrapper prefix removed)."""
    return name.removeprefix(PEFT_PREFIX)


def group_of(name: str) -> str | None:
    """The parameter group of a parameter name (None: not in any group)."""
    name = canonical(name)
    top = name.split(".", 1)[0]
    if top == "language_model":
        return "lora" if "lora_" in name else "llm"
    return top if top in GROUP_MODULES else None


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every parameter of the model by group (empty groups included)."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in GROUPS}
    for name, param in model.named_parameters():
        group = group_of(name)
        if group is not None:
            groups[group].append((name, param))
    return groups


def numel(param: nn.Parameter) -> int:
    """Element count, also for a ZeRO-3 partitioned parameter."""
    return int(getattr(param, "ds_numel", param.numel()))


def apply_stage(model: nn.Module, stage: Stage) -> dict[str, int]:
    """Freeze everything, then unfreeze the stage's groups; returns {group: trainable count}.

    LoRA must already be on the language model when the stage trains it (`og.train.run`).
    """
    groups = parameter_groups(model)
    missing = [g for g in stage.train if g not in groups]
    if missing:
        raise ValueError(f"stage {stage.name!r} trains unknown groups {missing}; groups: {', '.join(GROUPS)}")
    if "lora" in stage.train and not groups["lora"]:
        raise ValueError(f"stage {stage.name!r} trains LoRA but the language model has no LoRA weights; "
                         "add them first (og.model.lora)")
    for param in model.parameters():
        param.requires_grad_(False)
    for group in stage.train:
        for _, param in groups[group]:
            param.requires_grad_(True)
    return summarize(model, stage)


def summarize(model: nn.Module, stage: Stage) -> dict[str, int]:
    """{group: trainable elements}; logs one line with the trainable and frozen counts."""
    trainable: dict[str, int] = {}
    frozen: dict[str, int] = {}
    for group, params in parameter_groups(model).items():
        t = sum(numel(p) for _, p in params if p.requires_grad)
        f = sum(numel(p) for _, p in params if not p.requires_grad)
        if t:
            trainable[group] = t
        if f:
            frozen[group] = f
    fmt = ", ".join
    log.info("stage %s: trainable %s (total %s); frozen %s", stage.name,
             fmt(f"{g} {human(n)}" for g, n in trainable.items()) or "nothing", human(sum(trainable.values())),
             fmt(f"{g} {human(n)}" for g, n in frozen.items()) or "nothing")
    return trainable


def human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
