"""Export a training run as a standalone model directory that `og.load` reads.

`export_run(run_dir, out_dir)` rebuilds the frozen base the run recorded (`og_train.json`:
local weight paths, or the base copy saved beside the run), puts LoRA on it when the stage
trained LoRA, loads stage 1's connector (when the run started from one) and then the run's
own trainable weights, and saves model + processor. With `merge_lora=True` the adapters are
folded into the LLM's weights; otherwise the model is saved without them and the adapters go
to `out_dir/adapter` (`og.model.lora.load_lora` puts them back).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from peft import PeftModel
from torch import nn

from og.train.checkpoint import load_trainables, read_info
from og.train.run import add_lora, has_lora
from og.train.stages import CONNECTOR, LoraSettings

log = logging.getLogger(__name__)
ADAPTER_DIR = "adapter"


def load_base(info: dict[str, Any], dtype: Any = None) -> tuple[nn.Module, Any]:
    """`(model, processor)` of the frozen base a run recorded."""
    import og
    from og.spec import ModelSpec

    base = info.get("base") or {}
    if base.get("dir"):
        if not Path(base["dir"], "config.json").is_file():
            raise FileNotFoundError(f"the run's base model {base['dir']} is gone; it is needed to export")
        return og.load(base["dir"], dtype=dtype)
    spec = ModelSpec.from_dict(info["spec"])
    return og.build(spec, encoder_path=base.get("encoder_path"), llm_path=base.get("llm_path"),
                    tokenizer=base.get("tokenizer"), dtype=dtype)


def export_model(model: nn.Module, processor: Any, out_dir: str | Path, merge_lora: bool = True) -> Path:
    """Save a trained model (a PeftModel when it has LoRA) and its processor as one directory."""
    from og.model.factory import save
    from og.model.lora import merge_lora as merge
    from og.model.lora import save_lora

    out_dir = Path(out_dir)
    if isinstance(model, PeftModel):
        if merge_lora:
            model = merge(model)
        else:
            save_lora(model, out_dir / ADAPTER_DIR)
            model = model.unload()
    elif has_lora(model):
        raise ValueError("the model has LoRA layers but is not a PeftModel; export TrainResult.model "
                         "(the PeftModel run_stage returns)")
    save(model, processor, out_dir)
    log.info("exported to %s%s", out_dir, " (LoRA merged)" if merge_lora else "")
    return out_dir


def rebuild(run_dir: str | Path, dtype: Any = None) -> tuple[nn.Module, Any]:
    """The trained model of a run (LoRA still separate, a PeftModel when the run had LoRA)."""
    from og.model.processing import OGLlavaProcessor

    info = read_info(run_dir)
    model, processor = load_base(info, dtype)
    if info.get("lora"):
        model = add_lora(model, LoraSettings(**info["lora"]))
    if info.get("from_stage1"):
        load_trainables(model, info["from_stage1"], groups=CONNECTOR)
    names = load_trainables(model, run_dir)
    log.info("loaded %d trained tensors (%s) from %s", len(names), ", ".join(info.get("saves", [])), run_dir)
    if Path(run_dir, "og_processor.json").is_file():
        processor = OGLlavaProcessor.from_pretrained(run_dir)
    return model, processor


def export_run(run_dir: str | Path, out_dir: str | Path, merge_lora: bool = True, dtype: Any = None) -> Path:
    """`og export`: a run directory (or one of its checkpoints) -> a standalone model directory."""
    model, processor = rebuild(run_dir, dtype)
    return export_model(model, processor, out_dir, merge_lora=merge_lora)
