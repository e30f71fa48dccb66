"""A stand-in for CLIP's pretraining: contrastive image-caption training of the quickstart's tiny ViT.

The real model starts from CLIP, whose features carry shape and position; a random tiny ViT's do
not (see `og probe`). This stage trains the tiny `clip` encoder CLIP-style on the generated
*training* images and their captions only (stage 1's `stage1.json`; no generator label is a target):

- a small text tower (word embeddings + learned positions, a pre-LN transformer, mean over the
  words) and the ViT's patch features at the layer the LLM reads (spec layer, -2), mean-pooled,
  each projected to a shared space; symmetric InfoNCE with a learned temperature (CLIP);
- hard negative captions as in NegCLIP (Yuksekgonul et al., the ARO paper): each caption also gets
  text-only perturbations of itself (a shape word swapped between two objects or replaced by a shape
  word the caption does not use; the same for colour), added as extra columns of the image-to-text
  loss, so that the encoder must see which shape and which colour each object has (`clip_data`, which
  also gathers the images, captions and mask weights);
- `pooling="objects"` scores each caption phrase against its best-matching region (`clip_towers`);
  `region="box"` pools each mask's bounding box instead of its pixels: over the exact mask the
  pooling itself carries the outline, and the features never have to (train-split probe: shape
  0.74 with masks, 0.94 with boxes, both with `phrase_loss`); `phrase_loss` adds an InfoNCE per
  phrase against the batch's distinct phrases (RegionCLIP's region-concept term); `word_loss` asks
  every token of a phrase's region for the phrase's words (the pooled terms leave shape in the pool of
  an object's tokens, not in any one: token probe 0.35 linear; with `word_loss=5`, `lr_schedule=
  "constant"` and `max_grad_norm=0`, 0.70 at 1,500 steps and 0.98 at 3,000, with less position; README);
  `position_loss` has every token name its own grid row and column (a linear head, cross-entropy; the
  patch index is the input's own), which keeps position in every token (0.97-0.98) while the word loss
  trains: the quickstart's default;
- the position embeddings start at std `position_std` (CLIP's init gives 0.02, too small for a
  2-4 block ViT to keep where a patch is; at 1.0 a linear probe reads an object's half of the image).

The result is a real local checkpoint (`CLIPVisionModel.save_pretrained` + `preprocessor_config.json`)
that `EncoderSpec("clip", ...)` loads with `encoder_path=`, like a user's CLIP. Resumable: the state
(encoder, text tower, optimizer moments, step) is saved as safetensors every `save_every` steps.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from og.data.shapes.scene import COLORS, SHAPES
from og.experiments.clip_data import hard_negatives, training_set
from og.experiments.clip_towers import (
    WORD,
    TextTower,
    encode_words,
    object_embeddings,
    phrase_ids,
    phrase_loss,
    position_loss,
    similarities,
    word_loss,
)
from og.experiments.records import as_written, jsonable
from og.registry import ENCODERS
from og.spec import EncoderSpec


@dataclass(frozen=True)
class ClipPretrainConfig:
    """What the stand-in pretraining trains and how long."""

    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    embed_dim: int = 64  # the shared image-text space
    text_width: int = 64
    text_layers: int = 2
    hard_negatives: int = 2  # perturbed captions per caption (0: plain CLIP)
    position_std: float = 1.0  # std of the ViT's position embeddings at the start
    encoder: dict[str, Any] = field(default_factory=lambda: dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, image_size=128,
        patch_size=16, projection_dim=64, hidden_act="quick_gelu"))
    layer: int = -2  # the layer that is pooled (the one the LLM reads)
    pooling: str = "mean"  # "mean" (CLIP), "tokens" (FILIP), "objects" (phrase-to-mask; needs masks)
    region: str = "mask"  # what `objects` pooling pools: "mask" (its pixels) or "box" (its bounding box)
    phrase_loss: float = 0.0  # weight of the per-phrase InfoNCE (RegionCLIP region-concept; `objects` only)
    word_loss: float = 0.0  # weight of the per-token word InfoNCE (clip_towers.word_loss; `objects` only)
    position_loss: float = 0.0  # weight of the per-token position prediction (clip_towers.position_loss)
    lr_schedule: str = "cosine"  # "cosine" (linear warm-up, cosine decay) or "constant" (neither)
    max_grad_norm: float = 1.0  # gradient clipping (0: none)
    save_every: int = 250
    seed: int = 0


REGIONS = ("mask", "box")
SCHEDULES: dict[str, Callable[[ClipPretrainConfig], Callable[[int], float]]] = {  # step -> lr factor
    "cosine": lambda cfg: lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    "constant": lambda cfg: lambda s: 1.0,
}


def _save_state(path: Path, modules: dict[str, nn.Module], opt: torch.optim.Optimizer, step: int) -> None:
    tensors = {f"{name}.{k}": v.detach().contiguous() for name, m in modules.items() for k, v in m.state_dict().items()}
    params = [p for g in opt.param_groups for p in g["params"]]  # indexed as _load_state reads them
    for i, p in enumerate(params):
        tensors |= {f"opt.{i}.{k}": torch.as_tensor(v).contiguous() for k, v in opt.state.get(p, {}).items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step)})
    tmp.replace(path)


def _load_state(path: Path, modules: dict[str, nn.Module], opt: torch.optim.Optimizer) -> None:
    tensors = load_file(str(path))
    for name, m in modules.items():
        m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        state = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
        if state:
            opt.state[p] = state


def _check(cfg: ClipPretrainConfig, masks: Any) -> None:
    """A one-line error for a setting the run cannot honour."""
    for name in ("phrase_loss", "word_loss"):
        if getattr(cfg, name) and cfg.pooling != "objects":
            raise ValueError(f"{name}={getattr(cfg, name)} needs pooling='objects' (the masks' features), "
                             f"not pooling={cfg.pooling!r}; set {name}=0 or pooling='objects'")
    if cfg.lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule={cfg.lr_schedule!r} is not one of {tuple(SCHEDULES)}")
    if cfg.region not in REGIONS:
        raise ValueError(f"region={cfg.region!r} is not one of {REGIONS}")
    if cfg.pooling == "objects" and masks is None:
        raise ValueError("pooling='objects' needs the images' masks: pass masks= (a MaskStore or its folder, "
                         "e.g. the shapes oracle store or `og masks build` over the data folder)")


def pretrain_encoder(data_dir: str | Path, out_dir: str | Path, config: ClipPretrainConfig | None = None,
                     on_step: Callable[[int, int, float], None] | None = None, masks: Any = None,
                     exclude: frozenset[bytes] = frozenset()) -> dict[str, Any]:
    """Train, save the encoder checkpoint in `out_dir`, return the report (also `out_dir/pretrain.json`).
    A finished run is read back; a killed one resumes from its last saved state. `masks` (a
    MaskStore or its folder) gives `objects` pooling its masks; images whose hash
    (`og.data.shapes.dataset.image_hash`) is in `exclude` are left out (e.g. the test split's)."""
    cfg = config or ClipPretrainConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    report_path = out_dir / "pretrain.json"
    if report_path.is_file():
        done = json.loads(report_path.read_text())
        if as_written(done.get("config", {}), asdict(ClipPretrainConfig())) != jsonable(asdict(cfg)):
            raise ValueError(f"{out_dir} holds an encoder pretrained with another config; remove it or pass another")
        return done
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    spec = EncoderSpec("clip", "tiny", layer=cfg.layer)
    encoder = ENCODERS.get("clip").from_spec(spec, config={"vision_config": {**cfg.encoder, "model_type":
                                                                              "clip_vision_model"},
                                                       "mean": list(ENCODERS.get("clip").default_mean),
                                                       "std": list(ENCODERS.get("clip").default_std)})
    with torch.no_grad():
        emb = getattr(encoder.model, "vision_model", encoder.model).embeddings.position_embedding.weight
        emb.mul_(cfg.position_std / emb.std())
    _check(cfg, masks)
    pixels, texts, weights, excluded = training_set(data_dir, encoder, masks if cfg.pooling == "objects" else None,
                                                    cfg.region, exclude)
    vocab = {w: i + 2 for i, w in enumerate(sorted({w for t in texts for w in WORD.findall(t)} | set(SHAPES)
                                                   | set(COLORS)))}  # 0 pad, 1 unknown
    length = max(len(WORD.findall(t)) for t in texts)
    text = TextTower(len(vocab) + 2, cfg.text_width, cfg.text_layers, cfg.embed_dim, max_len=length)
    head = nn.ModuleDict({"image": nn.Linear(encoder.dim, cfg.embed_dim, bias=False)})
    scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    head.register_parameter("scale", scale)
    if cfg.position_loss:
        head["position"] = nn.Linear(encoder.dim, sum(encoder.grid))
    modules = {"encoder": encoder, "text": text, "head": head}
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, SCHEDULES[cfg.lr_schedule](cfg))
    state_path, step, losses = out_dir / "state.safetensors", 0, []
    if state_path.is_file():
        _load_state(state_path, modules, opt)
        step = int(json.loads((out_dir / "progress.json").read_text())["step"])
        losses = json.loads((out_dir / "progress.json").read_text())["losses"]
        for _ in range(step):
            sched.step()
    start = time.time()
    encoder.train()
    while step < cfg.steps:
        rng = np.random.default_rng((cfg.seed, step))  # per step: a resumed run draws what it would have
        batch = torch.as_tensor(rng.choice(len(texts), cfg.batch_size, replace=False))  # (B,)
        captions = [texts[i] for i in batch.tolist()]
        negatives = [n for c in captions for n in hard_negatives(c, cfg.hard_negatives, rng)]
        if cfg.pooling == "objects":
            ids = phrase_ids(captions + negatives, vocab, weights.shape[1], length)  # (B + B*k, O, L)
        else:
            ids = encode_words(captions + negatives, vocab, length)  # (B + B*k, L)
        patches = encoder(pixels[batch].float())  # (B, P, D)
        i2t, t2i = similarities(patches, text, ids, head["image"], cfg.pooling,
                                None if weights is None else weights[batch])  # (B, B + B*k)
        scale, target = head.scale.exp().clamp(max=100), torch.arange(len(batch))
        loss = 0.5 * (nn.functional.cross_entropy(scale * i2t, target)
                      + nn.functional.cross_entropy(scale * t2i[:, : len(batch)].T, target))
        if cfg.phrase_loss or cfg.word_loss:
            objects = object_embeddings(patches, head["image"], weights[batch])  # (B, O, E)
        if cfg.phrase_loss:
            loss = loss + cfg.phrase_loss * phrase_loss(objects, weights[batch].sum(-1) > 0, captions, negatives,
                                                        text, vocab, length, scale)
        if cfg.word_loss:
            tokens = nn.functional.normalize(head["image"](patches), dim=-1)  # (B, P, E)
            loss = loss + cfg.word_loss * word_loss(tokens, objects, weights[batch], captions, text, vocab, length,
                                                    scale)
        if cfg.position_loss:
            loss = loss + cfg.position_loss * position_loss(patches, head["position"], encoder.grid)
        opt.zero_grad()
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        step += 1
        losses.append(round(loss.item(), 4))
        if on_step is not None:
            on_step(step, cfg.steps, losses[-1])
        if step % cfg.save_every == 0 and step < cfg.steps:
            _save_state(state_path, modules, opt, step)
            (out_dir / "progress.json").write_text(json.dumps({"step": step, "losses": losses}))
    encoder.model.save_pretrained(out_dir)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({"image_mean": list(encoder.mean),
                                                                  "image_std": list(encoder.std)}))
    k = max(1, min(20, len(losses) // 10))  # the loss at the start and the end: means over k steps
    report = {"config": asdict(cfg), "steps": step, "loss_first": float(np.mean(losses[:k])),
              "loss_last": float(np.mean(losses[-k:])), "seconds": round(time.time() - start, 1),
              "threads": torch.get_num_threads(),  # the weights depend on it (the order of the sums)
              "images": len(texts), "excluded": excluded, "losses": losses[:: max(1, len(losses) // 100)]}
    report_path.write_text(json.dumps(report))
    state_path.unlink(missing_ok=True)
    (out_dir / "progress.json").unlink(missing_ok=True)
    return report
