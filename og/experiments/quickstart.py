"""`og quickstart`: the paper's experiment in miniature, offline, on a CPU.

1. Generate the synthetic `shapes` data (og.data.shapes): train images with captions (stage 1)
   and short-answer questions (stage 2), held-out test images with compositional probes
   (attribute, binding, relation, replace, order), and the renderer's exact object masks.
2. Masks: the oracle masks go into a MaskStore; SLIC superpixels are segmented into another.
3. A word-level tokenizer trained on the generated text; a tiny CLIP-style ViT pretrained
   contrastively on the training images and captions (`og.experiments.clip_pretrain`: it stands in for
   CLIP, trained once per data folder, saved as a local checkpoint, loaded through `encoder_path` like a
   user's CLIP, frozen afterwards) and checked with the object probe (`og.eval.probe`); a tiny random
   Llama-style LLM built from a config. Steps 1-3 are `og.experiments.quickstart_data`.
4. Per variant and seed (`og.experiments.ablate`): a text-only warm-up of the random tiny LLM on the training
   conversations (it stands in for a pretrained LLM: every word and chat marker gets trained
   embeddings), stage 1 on the captions (connector + the tiny LLM), stage 2 on the questions and
   the centre drill (connector + the tiny LLM), then the probes scored by option log-likelihood on
   the test split and on train images.
5. A table (accuracy per probe type, mean ± sd over seeds, visual tokens per image),
   `results.json`, `accuracy.png` and `examples.png`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from og.data.shapes.scene import ShapesConfig
from og.data.shapes.text import CENTER_KINDS
from og.experiments.ablate import Schedule, Variant, run_ablation
from og.experiments.clip_pretrain import ClipPretrainConfig
from og.experiments.records import as_written, jsonable
from og.spec import EncoderSpec, FusionSpec, LLMSpec, ModelSpec, PositionSpec, ProjectorSpec, SegmenterSpec

log = logging.getLogger(__name__)

ORACLE = SegmenterSpec("given", "shapes-oracle")  # the id write_oracle_store records
SLIC = SegmenterSpec("slic", options=(("compactness", 10), ("n_segments", 12)))
# at 64 px with 8-px patches a small object covers under half a patch: keep its best patch
BASE = ModelSpec(EncoderSpec("clip", "tiny"), ORACLE, FusionSpec("masktoken", min_one_patch=True), PositionSpec("none"),
                 ProjectorSpec("mlp2x_gelu"), LLMSpec("tiny-llama"))


POSITIONS_COMPARED = ("sincos2d", "learned2d", "grouped_rope")


def variants(all_variants: bool = False) -> list[Variant]:
    """The baseline and the object-guided variants (the last three only with `--all`)."""
    chosen = [
        Variant("patches", BASE.replace(fusion="patches", segmenter="none")),
        Variant("masktoken+oracle", BASE, "oracle"),
    ]
    if all_variants:
        chosen += [
            Variant("masktoken+slic", BASE.replace(segmenter=SLIC), SLIC.id),
            Variant("maskpool+oracle", BASE.replace(fusion="maskpool(min_one_patch=true)"), "oracle"),
            Variant("masktoken+raster1d", BASE.replace(fusion="masktoken(downsampler=raster1d,min_one_patch=true)"),
                    "oracle"),
        ] + [  # do object tokens need explicit positions to answer relation questions?
            Variant(f"masktoken+oracle+{position}", BASE.replace(position=position), "oracle")
            for position in POSITIONS_COMPARED
        ]
    return chosen


@dataclass(frozen=True)
class Size:
    """How big the run is."""

    n_train: int
    n_test: int
    n_train_probe: int  # train images whose probes measure train accuracy
    schedule: Schedule
    encoder: ClipPretrainConfig = ClipPretrainConfig()  # the stand-in for CLIP's pretraining
    probe_images: int = 1500  # train images whose objects the encoder probe reads
    pretrain_images: int = 0  # images the encoder pretrains on: 0 = the training images; more = a bigger
    # generated training set of its own (the same generator and seed, so it starts with the training images)
    questions_per_image: int | None = 4  # stage-2 questions per training image (None: every question it has)
    drill_kinds: tuple[str, ...] = ()  # one more stage-2 record per training image: every question of these kinds


# Stage 2 trains the whole tiny LLM with the connector, both at 2e-3, in updates of 64 samples (16 x 4,
# each update's micro-batches grouped by length), constant lr, no clipping, on the mix plus the centre
# drill ("Is the red circle left or right of the center?", every such question of each training image):
# the stage-2 recipe under which the quickstart's model answers relation questions (README, "Position
# questions"; chosen on train probes).
STAGE2 = dict(train_llm_stage2=True, stage2_lr=2e-3, stage2_accumulation=4, stage2_lr_scheduler="constant",
              stage2_max_grad_norm=0.0, stage2_group_by_length=True)
SIZES = {
    "default": Size(2000, 300, 100, Schedule(stage1_epochs=3, stage2_epochs=50, batch_size=16, stage1_lr=1e-3,
                                             train_llm_stage1=True, lm_epochs=2, **STAGE2),
                    ClipPretrainConfig(steps=3000, position_std=2.0, pooling="objects", region="box", phrase_loss=1.0,
                                       word_loss=5.0, position_loss=1.0, lr_schedule="constant", max_grad_norm=0.0),
                    pretrain_images=10_000, drill_kinds=CENTER_KINDS),
    "fast": Size(96, 24, 16, Schedule(stage1_epochs=1, stage2_epochs=1, batch_size=16, stage1_lr=1e-3,
                                      train_llm_stage1=True, lm_epochs=1, **STAGE2),
                 ClipPretrainConfig(steps=20, batch_size=32, save_every=10, position_std=2.0, pooling="objects",
                                    region="box", phrase_loss=1.0, word_loss=5.0, position_loss=1.0,
                                    lr_schedule="constant", max_grad_norm=0.0),
                 probe_images=96, drill_kinds=CENTER_KINDS),
}
# 1-3 objects: single-object images let the tiny model learn colour and size words first
# 128 px (objects 22-38 px) read by 16-px patches: the same 8 x 8 grid as 64 px / 8 px, with shapes drawn finely
# enough to tell apart (encoder probe, train split: shape 0.56 against 0.44-0.49 at 64 px, same steps)
SCENES = ShapesConfig(min_objects=1, max_objects=3, image_size=128)


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Resuming reads finished runs back, so a folder holds one configuration: refuse another."""
    marker = out / "quickstart.json"
    identity = jsonable(identity)  # tuples as lists, as read back
    held = json.loads(marker.read_text()) if marker.is_file() else identity
    defaults = {**{f.name: f.default for f in fields(Size) if f.default is not MISSING},
                "schedule": asdict(Schedule()), "encoder": asdict(ClipPretrainConfig()),
                "scenes": asdict(ShapesConfig())}  # the configs a field may be added to
    if as_written(held, defaults) != identity:
        same = held.get("size") == identity["size"]
        other = " with another configuration (e.g. an older og's defaults)" if same else ""
        raise ValueError(f"{out} holds a quickstart of {held.get('size', 'another')!r} size{other}; pass another --out "
                         "or remove the folder")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity))


def run_quickstart(out: str | Path = "runs/quickstart", fast: bool = False, seeds: int = 1,
                   all_variants: bool = False, on_done: Any = None, on_step: Any = None,
                   on_encoder_step: Any = None, jobs: int = 1, threads: int = 1,
                   encoder_threads: int | None = None) -> dict[str, Any]:
    """Everything above; returns {"summary", "results", "paths"}. `jobs` runs side by side (processes
    of `threads` threads each; the same numbers as one after another at the same thread count); the
    encoder pretrains on `encoder_threads` (None: the caller's count; its weights depend on it)."""
    from og.experiments.ablate import ensure_store
    from og.experiments.ablate_report import accuracy_chart, chance_levels, examples_figure, summarize, write_json
    from og.experiments.quickstart_data import prepare_data
    from og.masks.store import MaskStore

    out = Path(out)
    size = SIZES["fast" if fast else "default"]
    _claim(out, {"size": "fast" if fast else "default", **asdict(size), "scenes": asdict(SCENES)})
    data = prepare_data(out, size, on_encoder_step=on_encoder_step, encoder_threads=encoder_threads)
    chosen = variants(all_variants)
    for v in chosen:
        if v.masks:
            ensure_store(v.masks, data, out)
    results = run_ablation(chosen, data, size.schedule, list(range(seeds)), out, on_done=on_done, on_step=on_step,
                           jobs=jobs, threads=threads)
    summary = summarize(results)
    meta = {"size": asdict(size), "seeds": seeds, "variants": [{"label": v.label, "spec": v.spec.id,
                                                                 "masks": v.masks} for v in chosen],
            "scoring": "option log-likelihood (no parsing); train = probes on 'n_train_probe' train images",
            "mask_order": "segmenter order (score, then area): it says nothing about position",
            "encoder": data.encoder}
    stores = {name: MaskStore(path) for name, path in data.stores.items()}
    test_rows = [json.loads(line) for line in (data.image_root / "test.jsonl").read_text().splitlines()]
    meta["chance"] = chance_levels(test_rows)
    paths = {
        "results": write_json(out / "results.json", summary, results, meta),
        "accuracy": accuracy_chart(summary, out / "accuracy.png", chance=meta["chance"]),
        "examples": examples_figure(results, data.image_root, stores, out / "examples.png"),
    }
    return {"summary": summary, "results": results, "paths": paths, "encoder": data.encoder}
