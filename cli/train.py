"""`og train`: one OG-LLaVA training stage from the command line; `--dry-run` only reports.

    og train --stage pretrain --preset og-llava-3b --llm /models/Llama-3.2-3B-Instruct \\
        --encoder-path /models/clip-vit-large-patch14-336 --data blip_558k.json --image-root img \\
        --masks masks/558k --output runs/s1 --deepspeed zero3 --bf16
    torchrun --nproc_per_node 8 $(which og) train ...      # or: deepspeed --num_gpus 8 $(which og) train ...

Every option `og train` does not know is a `TrainingArguments` override: `--learning_rate 2e-4`,
`--save-steps 100`, `--max_steps=10`, `--bf16` (a bare flag is true).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` / `--flag` pairs -> TrainingArguments keyword arguments."""
    from transformers import TrainingArguments

    fields = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {token!r}; TrainingArguments overrides look like "
                                     "--key value")
        key, eq, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, 1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise typer.BadParameter(f"unknown option --{key}{hint}; see `og train --help` and TrainingArguments")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        out[key] = _coerce(key, value, fields[key].default)
        i += 1
    return out


def _coerce(key: str, value: str, default: Any) -> Any:
    if isinstance(default, bool) or (default is None and value.lower() in ("true", "false")):
        if value.lower() not in _BOOL:
            raise typer.BadParameter(f"--{key} {value!r}: use true or false")
        return _BOOL[value.lower()]
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def resolve_spec(spec: str | None, preset: str | None, llm: Path | None, parts: dict[str, str | None]) -> Any:
    """The variant: a spec id or preset, parts replaced; `--llm PATH` names the LLM variant by its folder."""
    from og.spec import LLMSpec, ModelSpec

    if spec and preset:
        raise typer.BadParameter("give --spec or --preset, not both")
    base = ModelSpec.parse(spec or preset or "og-llava")
    chosen = {k: v for k, v in parts.items() if v}
    if llm is not None and "llm" not in chosen and base.llm.name == "hf":
        chosen["llm"] = LLMSpec("hf", llm.name.lower())
    return base.replace(**chosen).validate()


def _processor(spec: Any, encoder_path: Path | None, tokenizer: Path | None, template: str | None) -> Any:
    """The processor alone (the encoder for its geometry, the tokenizer): enough for `--dry-run`."""
    from transformers import AutoTokenizer

    from og.masks.geometry import ImageTransform
    from og.model.factory import default_template
    from og.model.processing import OGLlavaProcessor, prepare_tokenizer
    from og.registry import ENCODERS

    if tokenizer is None:
        raise typer.BadParameter("--dry-run needs the tokenizer: give --llm PATH or --tokenizer PATH")
    encoder = ENCODERS.get(spec.encoder.name).from_spec(spec.encoder, path=str(encoder_path) if encoder_path else None)
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(tokenizer)))
    return OGLlavaProcessor(tok, ImageTransform.for_encoder(encoder), spec.fusion, encoder.grid,
                            chat_template=template or default_template(spec, tok))


def _stage_table(chosen: Any) -> Table:
    from og.train.recipes import get_recipe
    from og.train.stages import STAGES

    table = Table(title=f"training stages (recipe {chosen.recipe})", title_justify="left")
    for col in ("stage", "trains", "lr", "connector lr", "template", "LoRA", "saves"):
        table.add_column(col)
    for stage in [*(get_recipe(chosen.recipe).apply(s) for s in STAGES.values()), chosen]:
        lora = f"r {stage.lora.r} / alpha {stage.lora.alpha} / dropout {stage.lora.dropout}" if stage.lora else "-"
        name = f"[bold green]{stage.name} (this run)[/]" if stage is chosen else stage.name
        table.add_row(name, ", ".join(stage.train), f"{stage.lr:g}", f"{stage.connector_lr or stage.lr:g}",
                      stage.template or "model's", lora, ", ".join(stage.saves))
    return table


def dry_run(spec: Any, stage: Any, args: Any, processor: Any, data: list[str], image_root: Path | None,
            store: Any, max_length: int, strict: bool, samples: int) -> None:
    """Print the resolved spec, the stage table and the token statistics; train nothing."""
    from og.data.llava_dataset import LlavaDataset
    from og.train.stats import token_stats

    console = Console()
    console.print(f"[bold]spec[/] {spec.id}")
    console.print_json(spec.to_json())
    console.print(_stage_table(stage))
    from og.train.recipes import describe
    from og.train.run import with_padding

    console.print(f"[bold]recipe[/] {describe(stage)}")
    processor = with_padding(processor, stage.pad_to_square)
    keys = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
            "gradient_accumulation_steps", "warmup_steps", "max_grad_norm", "bf16", "activation_checkpointing",
            "deepspeed", "output_dir")
    console.print("[bold]training arguments[/] " + ", ".join(f"{k}={getattr(args, k)}" for k in keys))
    dataset = LlavaDataset(data, processor, template=stage.template or processor.chat_template,
                           image_root=image_root, mask_store=store, max_length=max_length, strict=strict)
    stats = token_stats(dataset, samples)
    table = Table(title=f"token statistics ({stats.n_samples} of {len(dataset)} samples)", title_justify="left",
                  show_header=False)
    for row in [*stats.rows(), *((f"dataset: {k}", str(v)) for k, v in dataset.counts.items())]:
        table.add_row(*row)
    console.print(table)


def train(
    ctx: typer.Context,
    stage: str = typer.Option("pretrain", "--stage", help="pretrain | finetune | encoder (og.train.stages)."),
    preset: str = typer.Option(None, "--preset", help="Named variant (og info lists them); default og-llava."),
    spec: str = typer.Option(None, "--spec", help="Full spec id instead of a preset."),
    llm: Path = typer.Option(None, "--llm", help="Local LLM checkpoint directory (weights + tokenizer)."),
    tokenizer: Path = typer.Option(None, "--tokenizer", help="Tokenizer directory (default: --llm)."),
    encoder: str = typer.Option(None, "--encoder", help="Encoder spec part, e.g. clip:l336 or siglip:so400m."),
    encoder_path: Path = typer.Option(None, "--encoder-path", help="Local vision encoder weights."),
    segmenter: str = typer.Option(None, "--segmenter", help="Segmenter spec part (masks on the fly)."),
    fusion: str = typer.Option(None, "--fusion", help="Fusion spec part, e.g. masktoken(filler=true)."),
    position: str = typer.Option(None, "--position", help="Position encoding spec part."),
    projector: str = typer.Option(None, "--projector", help="Projector spec part."),
    data: list[str] = typer.Option(..., "--data", help="LLaVA JSON/JSONL file, FILE[:WEIGHT]; repeat to mix."),
    image_root: Path = typer.Option(None, "--image-root", help="Folder the records' image paths are relative to."),
    masks: Path = typer.Option(None, "--masks", help="MaskStore directory (keys = image paths)."),
    output: Path = typer.Option(..., "--output", help="Run directory (weights, checkpoints)."),
    from_stage1: Path = typer.Option(None, "--from-stage1", help="Stage-1 run directory: its connector weights."),
    deepspeed: str = typer.Option(None, "--deepspeed", help="zero2 | zero3 | zero3_offload | a config path."),
    lora_r: int = typer.Option(None, "--lora-r", min=1),
    lora_alpha: int = typer.Option(None, "--lora-alpha", min=1),
    lora_dropout: float = typer.Option(None, "--lora-dropout", min=0.0, max=1.0),
    lora_target: str = typer.Option(None, "--lora-target", help="all-linear or q_proj,v_proj,..."),
    train_llm: bool = typer.Option(False, "--train-llm", help="Train the whole LLM instead of LoRA."),
    train_encoder: bool = typer.Option(False, "--train-encoder", help="Train the vision encoder too."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 mixed precision."),
    max_length: int = typer.Option(2048, "--max-length", min=1, help="Tokens per sample (text cut at the end)."),
    template: str = typer.Option(None, "--template", help="Chat template (default: the stage's / the model's)."),
    group_by_modality_length: bool = typer.Option(None, "--group-by-modality-length/--no-group-by-modality-length",
                                                  help="Default: the recipe's (on in finetuning)."),
    recipe: str = typer.Option(None, "--recipe", help="og-llava | llava-1.5 | og (default: the preset's)."),
    strict: bool = typer.Option(False, "--strict", help="Missing images or masks are errors, not skipped."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output."),
    dry: bool = typer.Option(False, "--dry-run", help="Print spec, stages and token statistics; no training."),
    dry_samples: int = typer.Option(200, "--dry-run-samples", min=1, help="Samples the dry run encodes."),
) -> None:
    """Train one stage (any unknown --key value is a transformers TrainingArguments override)."""
    import og
    from og.train.recipes import recipe_for
    from og.train.run import leave_process_group, run_stage, training_arguments
    from og.train.stages import LoraSettings, get_stage

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "accelerate", "deepspeed", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides = parse_overrides(list(ctx.args))
    overrides.pop("local_rank", None)  # the deepspeed launcher's; the environment carries it too
    the_spec = resolve_spec(spec, preset, llm, {"encoder": encoder, "segmenter": segmenter, "fusion": fusion,
                                                "position": position, "projector": projector})
    lora_given = {k: v for k, v in (("r", lora_r), ("alpha", lora_alpha), ("dropout", lora_dropout),
                                    ("target", lora_target)) if v is not None}
    base_stage = recipe_for(recipe, preset, spec).apply(get_stage(stage))
    lora = dataclasses.replace(base_stage.lora or LoraSettings(), **lora_given) if lora_given else None
    the_stage = base_stage.with_flags(train_llm=train_llm, train_encoder=train_encoder, lora=lora)
    tok_path = tokenizer or llm
    store = None
    if masks is not None:
        from og.masks.store import MaskStore

        store = MaskStore(masks)
    if bf16:
        overrides["bf16"] = True
    if dry:
        args = training_arguments(the_stage, output, deepspeed, **overrides)
        processor = _processor(the_spec, encoder_path, tok_path, template)
        dry_run(the_spec, the_stage, args, processor, data, image_root, store, max_length, strict, dry_samples)
        return
    from transformers import set_seed

    set_seed(int(overrides.get("seed", 42)))  # random components (tiny variants) start the same every run
    dtype = "bfloat16" if bf16 and deepspeed else None
    base = ({"llm_path": str(llm.resolve()), "encoder_path": str(encoder_path.resolve()),
             "tokenizer": str(tok_path.resolve())} if llm and encoder_path else None)
    saved_base = output / "base"
    if base is None and resume and (saved_base / "config.json").is_file():  # the random base the run began with
        model, processor = og.load(saved_base, dtype=dtype)
        base = {"dir": str(saved_base)}
    else:
        model, processor = og.build(the_spec, encoder_path=str(encoder_path) if encoder_path else None,
                                    llm_path=str(llm) if llm else None,
                                    tokenizer=str(tok_path) if tok_path else None, dtype=dtype)
    result = run_stage(the_stage, model, processor, data, output, image_root=image_root, mask_store=store,
                       from_stage1=from_stage1, template=template, max_length=max_length, strict=strict,
                       group_by_modality_length=group_by_modality_length, resume=resume, deepspeed=deepspeed,
                       base=base, **overrides)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, from the main process
        _summary(stage, result)
    leave_process_group()  # under torchrun: the ranks leave together, not torn down at exit


def _summary(stage: str, result: Any) -> None:
    table = Table(title=f"og train --stage {stage}: {result.output_dir}", title_justify="left", show_header=False)
    table.add_row("steps", str(result.global_step))
    table.add_row("first / last loss", f"{result.losses[0]:.4f} / {result.losses[-1]:.4f}" if result.losses else "-")
    table.add_row("trainable", ", ".join(f"{g} {n:,}" for g, n in result.trainable.items()))
    for kind, count in {**result.dataset_counts, **result.data_events}.items():
        table.add_row(kind, str(count))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
