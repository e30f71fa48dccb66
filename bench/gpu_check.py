"""One prepared GPU check (issue 15): the real-size model's CUDA path in one script that fits a
few minutes of a borrowed GPU. Prints one table and writes gpu_check.json; not a test.

    python bench/gpu_check.py [--llm-config 8b] [--sam2-checkpoint sam2.1_hiera_large.pt] --out DIR
    OMP_NUM_THREADS=1 .venv/bin/python bench/gpu_check.py --tiny --out /tmp/gc   # CPU, tiny shapes (its test)

Parts, each stopped at its time limit (`--limits`), which the table reports as reached:
  train  forward + backward + AdamW per fusion (patches, masktoken, then every other registered
         fusion while time is left) at batch 4, 40 masks per image made so that masktoken has
         patches' visual-token count, LLaVA-mix-length text, LoRA r 128 on every LLM linear,
         activation checkpointing, bf16: ms/step, visual tokens/s, peak memory, masktoken/patches
  infer  prefill + 32 generated tokens with the KV cache for patches and masktoken, sdpa and
         eager attention: latency, tokens/s, the same answers or why not
  zero   the finetune stage through og.train.run_stage plain, with ZeRO-2 and with ZeRO-3 (one
         process): the losses must be equal
  sam2   SAM2.1 hiera-large AMG on three scikit-image photos as `og masks build` runs it: images/s,
         masks per image (random weights unless --sam2-checkpoint)
Shapes come from configs with random weights (nothing is downloaded): CLIP ViT-L/14-336, a
Llama-3.2-3B-shaped LLM (`--llm-config 8b`: Llama-3.1-8B), mlp2x_gelu; `--tiny`: the tests' sizes.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout (og, cli) when run from source

import torch  # noqa: E402
from gpu_check_parts import infer_part, report, sam2_part, train_part, zero_part  # noqa: E402
from gpu_check_parts.budget import Part  # noqa: E402
from gpu_check_parts.shapes import Setup, free_memory, words  # noqa: E402
from gpu_check_parts.workload import Workload  # noqa: E402

PARTS = ("train", "infer", "zero", "sam2")
LIMITS = {"train": 110.0, "infer": 50.0, "zero": 140.0, "sam2": 60.0}  # s: 6 min in all, 7.5 at the hard limits
DEFAULT_LIMITS = ",".join(f"{k}={v:.0f}" for k, v in LIMITS.items())
CPU_LIMIT = 600.0  # every part's default on the CPU (--tiny: the first DeepSpeed run compiles a CPU op)
HARD_FACTOR = 1.25  # a part is interrupted at 1.25x its limit (CUDA runs)
INFER_FUSIONS = ("patches", "masktoken")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes for every part (runs on a CPU)")
    ap.add_argument("--llm-config", default="3b", choices=["3b", "8b"], help="LLM shape (ignored with --tiny)")
    ap.add_argument("--device", default=None, help="default: cuda; cpu with --tiny")
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float32"],
                    help="default: bfloat16 on CUDA, float32 on the CPU")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_check"), help="folder of gpu_check.json")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--limits", default="",
                    help=f"soft time limit per part in seconds, part=s,... (default {DEFAULT_LIMITS} on CUDA, "
                         f"{CPU_LIMIT:.0f} each on the CPU); the hard limit is 1.25x (none on the CPU)")
    ap.add_argument("--fusions", default=None, help="train-part fusions (default: patches, masktoken, then the rest)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--masks", type=int, default=40, help="masks per image (capped where the grid is small)")
    ap.add_argument("--lora-r", type=int, default=None, help="default 128 (8 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 10; 2 with --tiny)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; 1 with --tiny)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None, help="timed generations (default 3; 1 with --tiny)")
    ap.add_argument("--zero-steps", type=int, default=2)
    ap.add_argument("--sam2-checkpoint", default=None, help="sam2.1_hiera_large.pt (default: random weights)")
    return ap.parse_args(argv)


def parse_limits(text: str, cpu: bool) -> dict[str, float]:
    limits = {k: CPU_LIMIT for k in LIMITS} if cpu else dict(LIMITS)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in LIMITS or not value.replace(".", "", 1).isdigit():
            raise SystemExit(f"error: --limits item {item!r}; use part=seconds with part in {', '.join(PARTS)}")
        limits[key] = float(value)
    return limits


def make_setup(args: argparse.Namespace) -> Setup:
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here; run with --tiny (CPU, tiny shapes) or on a GPU machine")
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    return Setup("tiny" if args.tiny else args.llm_config, device, dtype,
                 lora_r=args.lora_r or (8 if args.tiny else 128))


def fusions(args: argparse.Namespace) -> list[str]:
    from og.registry import FUSIONS

    if args.fusions:
        return [f.strip() for f in args.fusions.split(",") if f.strip()]
    return [*INFER_FUSIONS, *(f for f in FUSIONS.list() if f not in INFER_FUSIONS)]


def metadata(args: argparse.Namespace, setup: Setup) -> dict[str, Any]:
    import transformers

    cuda = setup.device.type == "cuda"
    return {"device_name": torch.cuda.get_device_name(setup.device) if cuda else f"CPU ({platform.machine()})",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "transformers": transformers.__version__, "tiny": setup.tiny,
            "llm": setup.llm, "spec": setup.describe(), "dtype": str(setup.dtype).removeprefix("torch."),
            "batch": args.batch, "lora_r": setup.lora_r, "command": " ".join(sys.argv)}


def guarded(section: dict[str, Any], part: Part, fn: Any, *fn_args: Any) -> Any:
    """Run one unit of a part inside its time account; an error is recorded, not raised."""
    try:
        with part:
            return fn(*fn_args)
    except Exception as err:  # noqa: BLE001 - one broken part must not lose the others' numbers
        traceback.print_exc()
        section["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    finally:
        section["part"] = part.summary()
    return None


def train_and_infer(args: argparse.Namespace, setup: Setup, work: Workload, parts: dict[str, Part],
                    results: dict[str, Any]) -> None:
    """Per fusion: build, time the training step, then generate with the same model."""
    train, infer = results.setdefault("train", {"runs": {}}), results.setdefault("infer", {"runs": {}})
    for fusion in fusions(args):
        want_infer = "infer" in parts and fusion in INFER_FUSIONS
        if ("train" not in parts or parts["train"].out_of_time()) and not want_infer:
            continue
        built = guarded(train, parts.get("train", Part("build", 1e9)), setup.build, fusion)
        if built is None:
            continue
        model, processor = built
        if "train" in parts and not parts["train"].out_of_time():
            record = train["runs"].setdefault(fusion, {})
            model = guarded(train, parts["train"], train_part.run, model, processor, setup, work, parts["train"],
                            args.steps, args.warmup, record) or model
        if want_infer and not parts["infer"].out_of_time():
            record = infer["runs"].setdefault(fusion, {})
            guarded(infer, parts["infer"], infer_part.run, model, processor, setup, work, parts["infer"],
                    args.new_tokens, args.repeats, record)
        del model, processor
        free_memory()
    runs = train["runs"]
    if all(runs.get(f, {}).get("step_ms_median") for f in INFER_FUSIONS):
        train["ratio_masktoken_patches"] = runs["masktoken"]["step_ms_median"] / runs["patches"]["step_ms_median"]
        train["equal_visual_tokens"] = runs["masktoken"]["visual_tokens_per_image"] == \
            runs["patches"]["visual_tokens_per_image"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.steps = args.steps or (2 if args.tiny else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    args.repeats = args.repeats or (1 if args.tiny else 3)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        raise SystemExit(f"error: --parts {unknown}; use a subset of {','.join(PARTS)}")
    for name in ("transformers", "accelerate", "deepspeed", "DeepSpeed", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    setup = make_setup(args)
    limits = parse_limits(args.limits, setup.device.type == "cpu")
    hard = None if setup.device.type == "cpu" else HARD_FACTOR  # see budget.Part: no alarms on the CPU
    parts = {name: Part(name, limits[name], hard) for name in wanted}
    results: dict[str, Any] = {"meta": metadata(args, setup)}
    work = Workload.make(args.batch, *setup.geometry(), args.masks, words())
    train_and_infer(args, setup, work, parts, results)
    with tempfile.TemporaryDirectory() as tmp:
        if "zero" in parts:
            results["zero"] = {}
            guarded(results["zero"], parts["zero"], zero_part.run, setup, work, parts["zero"], args.zero_steps,
                    Path(tmp), results["zero"])
    if "sam2" in parts:
        results["sam2"] = {}
        guarded(results["sam2"], parts["sam2"], sam2_part.run, setup, parts["sam2"], args.sam2_checkpoint,
                results["sam2"])
    for name in ("train", "infer"):  # sections made but not wanted
        if name not in parts:
            results.pop(name, None)
    report.print_table(results)
    print(f"wrote {report.write_json(results, args.out)}")
    return 1 if any("error" in results.get(p, {}) for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
