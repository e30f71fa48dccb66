"""`og convert llava-hf SRC DST`: import a transformers LlavaForConditionalGeneration checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

convert_app = typer.Typer(help="Import checkpoints of other toolkits as og models.", no_args_is_help=True)


@convert_app.command("llava-hf")
def llava_hf(
    src: Path = typer.Argument(..., help="Local LlavaForConditionalGeneration directory (llava-hf layout)."),
    dst: Path = typer.Argument(..., help="Directory to write the og model to (og.load / og predict read it)."),
    chat_template: str = typer.Option("vicuna_v1", "--chat-template",
                                      help="Chat template of the processor: vicuna_v1, llama3, plain, tokenizer."),
    pad_to_square: bool = typer.Option(True, "--pad/--no-pad",
                                       help="Pad images to square first (LLaVA-1.5's image_aspect_ratio=pad)."),
) -> None:
    """LLaVA-1.5 = og's `patches` fusion + `mlp2x_gelu`: same weights, same logits."""
    from og.model.convert import convert_llava_hf

    out = convert_llava_hf(src, dst, chat_template=chat_template, pad_to_square=pad_to_square)
    typer.echo(f"converted {src} -> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(convert_app, name="convert")
