"""Trainable weights on disk: `trainables.safetensors` + `og_train.json` in a run or checkpoint dir.

Only what a stage trains is saved (the frozen encoder and LLM are never copied): the tensors by
their full parameter name in the model, and a JSON of the spec, the stage, its groups, the LoRA
settings and where the frozen base comes from. Under DeepSpeed ZeRO-3 the partitioned
parameters are gathered first (every rank takes part, rank 0 writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from og.train.stages import canonical, group_of

TRAINABLES = "trainables.safetensors"
INFO = "og_train.json"


def gather_trainables(model: nn.Module, groups: tuple[str, ...], zero3: bool = False) -> dict[str, torch.Tensor]:
    """{name: CPU tensor} of the trainable parameters in `groups` (ZeRO-3: gathered on every rank)."""
    named = [(canonical(n), p) for n, p in model.named_parameters() if p.requires_grad and group_of(n) in groups]
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None):
            return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in named}
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in named}


def save_trainables(directory: str | Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    """Write the tensors and the run info; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / TRAINABLES), metadata={"format": "pt", "stage": str(info.get("stage"))})
    (directory / INFO).write_text(json.dumps(info, indent=2, default=str))
    return directory


def read_info(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / INFO
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; give a directory written by `og train`")
    return json.loads(path.read_text())


def load_trainables(model: nn.Module, directory: str | Path, groups: tuple[str, ...] | None = None) -> list[str]:
    """Load saved tensors (only those in `groups` when given) into the model; returns their names.

    Every selected tensor must name a parameter of the model with the same shape.
    """
    path = Path(directory) / TRAINABLES
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; give a directory written by `og train`")
    tensors = {n: t for n, t in load_file(str(path)).items() if groups is None or group_of(n) in groups}
    params = {canonical(n): p for n, p in model.named_parameters()}
    unknown = [n for n in tensors if n not in params]
    if unknown:
        raise KeyError(f"{path} has {len(unknown)} tensors the model does not have (first: {unknown[:3]}); "
                       "build the model with the same spec (and LoRA settings) as the saved run")
    bad = [n for n, t in tensors.items() if tuple(t.shape) != tuple(params[n].shape)]
    if bad:
        raise ValueError(f"{path}: shape of {bad[0]} is {tuple(tensors[bad[0]].shape)} but the model's is "
                         f"{tuple(params[bad[0]].shape)}; the saved run used another spec")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].dtype))
    return sorted(tensors)
