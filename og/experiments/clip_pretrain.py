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
  loss, so that the encoder must see which shape and which colour each object has;
- the position embeddings start at std `position_std` (CLIP's init gives 0.02, too small for a
  2-4 block ViT to keep where a patch is; at 1.0 a linear probe reads an object's half of the image).

The result is a real local checkpoint (`CLIPVisionModel.save_pretrained` + `preprocessor_config.json`)
that `EncoderSpec("clip", ...)` loads with `encoder_path=`, like a user's CLIP. Resumable: the state
(encoder, text tower, optimizer moments, step) is saved as safetensors every `save_every` steps.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from og.data.shapes.scene import COLORS, SHAPES
from og.masks.geometry import ImageTransform
from og.registry import ENCODERS
from og.spec import EncoderSpec

WORD = re.compile(r"[a-z]+|[^\sa-z]")


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
    pooling: str = "mean"  # "mean": CLIP's one vector per side; "tokens": FILIP's word-to-patch late interaction
    save_every: int = 250
    seed: int = 0


class TextTower(nn.Module):
    """Word ids (B, L) -> caption embeddings (B, E): embeddings + positions, pre-LN transformer, mean."""

    def __init__(self, vocab: int, width: int, layers: int, out_dim: int, max_len: int = 64) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, width, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim, bias=False)

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, E)
        x = self.words(ids) + self.positions[: ids.shape[1]]  # (B, L, W)
        return self.proj(self.norm(self.blocks(x, src_key_padding_mask=ids == 0)))  # (B, L, E)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, E)
        keep = (ids != 0).unsqueeze(-1).float()  # (B, L, 1)
        return (self.tokens(ids) * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, E)


def similarities(patches: torch.Tensor, text: TextTower, ids: torch.Tensor, head: nn.Module,
                 pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities (B images, T texts) for the image-to-text and the text-to-image directions.
    `mean`: one vector per side (CLIP). `tokens`: FILIP: image-to-text averages, over the words, each
    word's best patch; text-to-image averages, over the patches, each patch's best word."""
    if pooling == "mean":
        img = nn.functional.normalize(head(patches.mean(1)), dim=-1)  # (B, E)
        sim = img @ nn.functional.normalize(text(ids), dim=-1).T  # (B, T)
        return sim, sim
    img = nn.functional.normalize(head(patches), dim=-1)  # (B, P, E)
    words = nn.functional.normalize(text.tokens(ids), dim=-1)  # (T, L, E)
    keep = (ids != 0).float()  # (T, L)
    sim = torch.einsum("bpe,tle->btpl", img, words)  # (B, T, P, L)
    i2t = (sim.amax(2) * keep).sum(-1) / keep.sum(-1).clamp_min(1.0)  # (B, T)
    t2i = sim.masked_fill(keep[None, :, None, :] == 0, -2.0).amax(3).mean(2)  # (B, T)
    return i2t, t2i


def hard_negatives(caption: str, k: int, rng: np.random.Generator) -> list[str]:
    """k perturbations of a caption's words: a shape (or colour) word swapped between two objects,
    or replaced by one the caption does not use. Text only: nothing about the image is read."""
    words = WORD.findall(caption)
    out: list[str] = []
    for i in range(k):
        vocab = (SHAPES, COLORS)[i % 2]
        where = [j for j, w in enumerate(words) if w in vocab]
        new = list(words)
        if len(where) >= 2 and rng.random() < 0.5:
            a, b = rng.choice(where, size=2, replace=False)
            new[a], new[b] = new[b], new[a]
        elif where:
            j = int(rng.choice(where))
            unused = [w for w in vocab if w not in words]
            new[j] = str(rng.choice(unused)) if unused else new[j]
        out.append(" ".join(new))
    return out


def _captions(data_dir: Path) -> list[tuple[str, str]]:
    """(image key, caption) of every stage-1 record: the last assistant turn."""
    rows = json.loads((data_dir / "stage1.json").read_text())
    return [(r["image"], [t["value"] for t in r["conversations"] if t["from"] == "gpt"][-1]) for r in rows]


def _encode_words(texts: list[str], vocab: dict[str, int], length: int) -> torch.Tensor:
    ids = torch.zeros(len(texts), length, dtype=torch.long)  # (N, L), 0 = pad
    for i, text in enumerate(texts):
        words = [vocab.get(w, 1) for w in WORD.findall(text)][:length]
        ids[i, : len(words)] = torch.tensor(words, dtype=torch.long)
    return ids


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


def pretrain_encoder(data_dir: str | Path, out_dir: str | Path, config: ClipPretrainConfig | None = None,
                     on_step: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train, save the encoder checkpoint in `out_dir`, return the report (also `out_dir/pretrain.json`).
    A finished run is read back; a killed one resumes from its last saved state."""
    cfg = config or ClipPretrainConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    report_path = out_dir / "pretrain.json"
    if report_path.is_file():
        done = json.loads(report_path.read_text())
        if done.get("config") != json.loads(json.dumps(asdict(cfg))):
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
    pairs = _captions(data_dir)
    transform = ImageTransform.for_encoder(encoder)
    pixels = torch.stack([transform.transform(Image.open(data_dir / key).convert("RGB"))[0]
                          for key, _ in pairs])  # (N, 3, H, W)
    texts = [c for _, c in pairs]
    words = sorted({w for t in texts for w in WORD.findall(t)} | set(SHAPES) | set(COLORS))
    vocab = {w: i + 2 for i, w in enumerate(words)}  # 0 pad, 1 unknown
    length = max(len(WORD.findall(t)) for t in texts)
    text = TextTower(len(vocab) + 2, cfg.text_width, cfg.text_layers, cfg.embed_dim, max_len=length)
    head = nn.ModuleDict({"image": nn.Linear(encoder.dim, cfg.embed_dim, bias=False)})
    scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    head.register_parameter("scale", scale)
    modules = {"encoder": encoder, "text": text, "head": head}
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
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
        batch = torch.as_tensor(rng.choice(len(pairs), cfg.batch_size, replace=False))  # (B,)
        captions = [texts[i] for i in batch.tolist()]
        negatives = [n for c in captions for n in hard_negatives(c, cfg.hard_negatives, rng)]
        ids = _encode_words(captions + negatives, vocab, length)  # (B + B*k, L)
        i2t, t2i = similarities(encoder(pixels[batch]), text, ids, head["image"], cfg.pooling)  # (B, B + B*k)
        scale, target = head.scale.exp().clamp(max=100), torch.arange(len(batch))
        loss = 0.5 * (nn.functional.cross_entropy(scale * i2t, target)
                      + nn.functional.cross_entropy(scale * t2i[:, : len(batch)].T, target))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(round(loss.item(), 4))
        if on_step is not None:
            on_step(step, cfg.steps, float(loss))
        if step % cfg.save_every == 0 and step < cfg.steps:
            _save_state(state_path, modules, opt, step)
            (out_dir / "progress.json").write_text(json.dumps({"step": step, "losses": losses}))
    encoder.model.save_pretrained(out_dir)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({"image_mean": list(encoder.mean),
                                                                  "image_std": list(encoder.std)}))
    k = max(1, min(20, len(losses) // 10))  # the loss at the start and the end: means over k steps
    report = {"config": asdict(cfg), "steps": step, "loss_first": float(np.mean(losses[:k])),
              "loss_last": float(np.mean(losses[-k:])), "seconds": round(time.time() - start, 1),
              "images": len(pairs), "losses": losses[:: max(1, len(losses) // 100)]}
    report_path.write_text(json.dumps(report))
    state_path.unlink(missing_ok=True)
    (out_dir / "progress.json").unlink(missing_ok=True)
    return report
