"""Relation learning curves: can a whole model learn "is A left or right of B?" from its visual
tokens, and after how many examples? (`kind="shape"`, `"color"` or `"size"` asks the same of an
attribute: "What shape is the red object?", one question per object, every option word scored.)

The relation probe (`og.eval.relation_probe`) asks this of a small reader; here the reader is the
model itself. The model (fusion, projector, LLM; the vision encoder frozen) trains on relation
questions alone, asked as the data asks them ("Is the red circle left or right of the blue
square?"), with the loss on the answer only: a 2-way cross-entropy over the two option words'
logits at the answer position, which is what the likelihood evaluation compares. Pairs, split and
budget are the relation probe's: every ordered pair of objects apart on an axis
(`relation_pairs`), the held-out images drawn as `fit_relation` draws them (same seed, same
images), `steps` steps of `batch` pairs, AdamW, the held-out pairs scored every `eval_every`
steps. So the model's curve and the reader's compare directly, and so do two fusions' curves:
OG-LLaVA's claim, object-guided tokens make relations easier to learn, measured on one skill.

`run_relation_curves` runs variants x seeds over a quickstart folder (its data, tokenizer,
encoder and oracle masks), one JSON per (variant, seed) under `<out>/relation/`, read back when
it exists (a killed run resumes); the whole model trains, so it is meant for miniatures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from og.data.shapes.text import TEMPLATES, center_side
from og.eval.probe import read_scenes
from og.eval.relation_probe import AXES, held_out_pairs, relation_pairs
from og.experiments.records import as_written

WORDS = {"left_right": ("left", "right"), "above_below": ("above", "below")}  # A first on the axis: word 0
KINDS = ("relation", "center", "shape", "color", "size")
REFERENT = {"shape": ("color",), "color": ("shape",), "size": ("color", "shape")}  # how an attribute question names


@dataclass(frozen=True)
class RelationQuestion:
    """One question asked as the data asks it, with its option words; `answer` indexes `words`
    (for a relation, 0 means the first word: left / above)."""

    scene: int  # index of the scene among those read
    image: str  # path relative to the data folder (the mask store's key)
    question: str
    words: tuple[str, ...]
    answer: int


def relation_questions(scenes: list[dict[str, Any]]) -> list[RelationQuestion]:
    """Every ordered pair apart on an axis (`relation_pairs`), as a question about colour + shape."""
    pairs, colors, shapes = relation_pairs(scenes)
    out = []
    for image, ca, sa, cb, sb, axis, first in pairs.tolist():
        kind = AXES[axis]
        question = TEMPLATES[kind].format(a=f"{colors[ca]} {shapes[sa]}", b=f"{colors[cb]} {shapes[sb]}")
        out.append(RelationQuestion(image, scenes[image]["image"], question, WORDS[kind], 0 if first else 1))
    return out


def attribute_questions(scenes: list[dict[str, Any]], attr: str) -> list[RelationQuestion]:
    """One question per object about its `attr`, naming it by the attributes of `REFERENT` ("What
    shape is the red object?"); objects that name does not single out are left out. The options are
    every value of `attr` in the scenes."""
    words = tuple(sorted({o[attr] for r in scenes for o in r["objects"]}))
    out = []
    for i, row in enumerate(scenes):
        for obj in row["objects"]:
            keys = REFERENT[attr]
            if sum(all(o[k] == obj[k] for k in keys) for o in row["objects"]) != 1:
                continue
            ref = " ".join([obj[k] for k in keys] + ([] if "shape" in keys else ["object"]))
            out.append(RelationQuestion(i, row["image"], TEMPLATES[attr].format(ref=ref), words,
                                        words.index(obj[attr])))
    return out


def center_questions(scenes: list[dict[str, Any]], width: int, height: int) -> list[RelationQuestion]:
    """Per object named by colour + shape, per axis on which its box lies wholly on one side of the
    image's centre line: "Is the red circle left or right of the center?" (the data's
    `left_right_center` / `above_below_center`)."""
    out = []
    for i, row in enumerate(scenes):
        for obj in row["objects"]:
            if sum(o["color"] == obj["color"] and o["shape"] == obj["shape"] for o in row["objects"]) != 1:
                continue
            for kind, (lo, hi), middle in (("left_right", (0, 2), width / 2), ("above_below", (1, 3), height / 2)):
                side = center_side(obj["box"][lo], obj["box"][hi] + 1, middle)  # the box's pixels: [lo, hi]
                if side is not None:
                    question = TEMPLATES[f"{kind}_center"].format(a=f"{obj['color']} {obj['shape']}")
                    out.append(RelationQuestion(i, row["image"], question, WORDS[kind], side))
    return out


def curve_questions(scenes: list[dict[str, Any]], kind: str, image_size: tuple[int, int] = (0, 0)
                    ) -> list[RelationQuestion]:
    """The questions of a learning curve of `kind` (one of `KINDS`); `image_size` (width, height)
    places the centre lines of `center`."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; use one of {KINDS}")
    if kind == "center":
        return center_questions(scenes, *image_size)
    return relation_questions(scenes) if kind == "relation" else attribute_questions(scenes, kind)


class RelationBatcher:
    """Questions -> model inputs (prompt ending where the answer starts) and the option word ids."""

    def __init__(self, processor: Any, data_dir: str | Path, mask_store: Any = None,
                 words: tuple[str, ...] = tuple(w for pair in WORDS.values() for w in pair)) -> None:
        self.processor, self.data_dir, self.store = processor, Path(data_dir), mask_store
        self._images: dict[str, Image.Image] = {}
        tok = processor.tokenizer
        self.word_id = {}
        for word in words:
            ids = tok(word, add_special_tokens=False)["input_ids"]
            if len(ids) != 1 or ids[0] == tok.unk_token_id:
                raise ValueError(f"the answer word {word!r} is not one known token for this tokenizer ({ids}); "
                                 "the relation curve compares single-token answers (train the tokenizer on the "
                                 "data's texts)")
            self.word_id[word] = ids[0]

    def image(self, path: str) -> Image.Image:
        if path not in self._images:
            self._images[path] = Image.open(self.data_dir / path).convert("RGB")
        return self._images[path]

    def option_logits(self, model: nn.Module, items: list[RelationQuestion]) -> torch.Tensor:
        """(B, K) logits of the K option words at the answer position."""
        proc = self.processor
        texts = [proc.apply_chat_template([("user", "<image>\n" + q.question)], add_generation_prompt=True)
                 for q in items]
        masks = [self.store.read(q.image) for q in items] if self.store is not None else None
        inputs = proc(texts, [self.image(q.image) for q in items], masks=masks, keys=[q.image for q in items],
                      padding_side="left")
        inputs.pop("image_sizes", None)
        device = next(model.parameters()).device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        last = model(**inputs).logits[:, -1]  # (B, V): the next token after the prompt
        ids = torch.tensor([[self.word_id[w] for w in q.words] for q in items], device=last.device)  # (B, K)
        return last.gather(1, ids).float()  # (B, K)


def _hits(model: nn.Module, batcher: RelationBatcher, items: list[RelationQuestion], batch: int = 128
          ) -> torch.Tensor:
    """(len(items),) bool: which questions the model answers right (the best-scored option word)."""
    was = model.training
    model.eval()
    right = []
    with torch.no_grad():
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            guess = batcher.option_logits(model, chunk).argmax(1).cpu()  # (b,)
            right.append(guess == torch.tensor([q.answer for q in chunk]))
    model.train(was)
    return torch.cat(right) if right else torch.zeros(0, dtype=torch.bool)


def _accuracy(model: nn.Module, batcher: RelationBatcher, items: list[RelationQuestion], batch: int = 128) -> float:
    return float(_hits(model, batcher, items, batch).sum()) / max(len(items), 1)


def relation_curve(model: nn.Module, processor: Any, data_dir: str | Path, *, split: str = "train",
                   images: int | None = 2000, steps: int = 3000, batch: int = 64, lr: float = 1e-3, seed: int = 0,
                   eval_every: int = 500, held_out: float = 0.2, mask_store: Any = None, shuffle: bool = False,
                   max_eval: int = 1024, on_eval: Any = None, kind: str = "relation") -> dict[str, Any]:
    """Train `model` (all but its vision encoder) on questions of `kind` alone; the held-out curve (see
    the module docstring). `shuffle` permutes the training answers (a control: held-out at chance)."""
    scenes = read_scenes(data_dir, split, images)
    with Image.open(Path(data_dir) / scenes[0]["image"]) as first:
        questions = curve_questions(scenes, kind, first.size)
    if not questions:
        raise ValueError(f"the {len(scenes)} {split!r} images have no {kind} question (a relation needs two "
                         "objects apart on an axis); use more images or scenes with two or more objects")
    rng = np.random.default_rng(seed)  # the relation probe's split: the same held-out images
    is_test = held_out_pairs(np.array([q.scene for q in questions]), held_out, rng)  # (P,)
    train = [q for q, t in zip(questions, is_test, strict=True) if not t]
    test = [q for q, t in zip(questions, is_test, strict=True) if t][:max_eval]
    answers = torch.tensor([q.answer for q in train])  # (P,)
    if shuffle:
        answers = answers[torch.as_tensor(rng.permutation(len(answers)))]
    batcher = RelationBatcher(processor, data_dir, mask_store, words=tuple(dict.fromkeys(
        w for q in questions for w in q.words)))
    encoder = getattr(model, "encoder", None)
    frozen = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    draw = np.random.default_rng((seed, 1))
    model.train()
    curve, start = [], time.time()
    for step in range(1, steps + 1):
        pick = draw.integers(len(train), size=batch)
        logits = batcher.option_logits(model, [train[i] for i in pick])  # (batch, K)
        loss = nn.functional.cross_entropy(logits, answers[torch.as_tensor(pick)].to(logits.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            hits = _hits(model, batcher, test)  # (len(test),) the last one also gives the per-axis split below
            point = {"step": step, "loss": round(loss.item(), 4),
                     "held_out": round(float(hits.sum()) / max(len(test), 1), 4),
                     "seconds": round(time.time() - start, 1)}
            curve.append(point)
            if on_eval is not None:
                on_eval(point)
    majority = int(torch.mode(answers).values)  # the commonest training answer
    groups = {words: torch.tensor([q.words == words for q in test]) for words in dict.fromkeys(q.words for q in test)}
    by_options = {"/".join(words): {"accuracy": round(float(hits[pick].float().mean()), 4),
                                    "questions": int(pick.sum())}
                  for words, pick in groups.items()} if len(groups) > 1 else {}  # per axis: left/right, above/below
    return {"accuracy": curve[-1]["held_out"], "train_accuracy": _accuracy(model, batcher, train[:max_eval]),
            "by_options": by_options,
            "curve": curve, "majority": float(np.mean([q.answer == majority for q in test])),
            "pairs": len(questions), "train_pairs": len(train), "held_out_pairs": len(test), "steps": steps,
            "batch": batch, "lr": lr, "seed": seed, "split": split, "images": len(scenes), "shuffle": shuffle,
            "kind": kind}


def run_relation_curves(out: str | Path, variants: list[Any], seeds: int = 1, layer: int | None = None,
                        steps: int = 3000, batch: int = 64, lr: float = 1e-3, images: int | None = 2000,
                        eval_every: int = 500, on_eval: Any = None, kind: str = "relation") -> list[dict[str, Any]]:
    """`relation_curve` for each variant (`og.experiments.ablate_grid.Variant`) and seed over the
    quickstart folder `out` (data/, tokenizer/, encoder/, masks/<variant.masks>); `layer` overrides
    the encoder layer read, `kind` the questions. Results go to
    out/relation/<label>[-layerK][-kind]/seed<k>.json (no suffix for relations) and are read back
    when there (settings must match). `on_eval(label, seed, point)` reports progress."""
    import og
    from og.experiments.ablate_grid import slug
    from og.masks.store import MaskStore
    from og.spec import SegmenterSpec

    out = Path(out)
    for need in ("data", "tokenizer", "encoder"):
        if not (out / need).exists():
            raise FileNotFoundError(f"{out / need} not found; give the folder `og quickstart --out` wrote")
    settings = {"layer": layer, "steps": steps, "batch": batch, "lr": lr, "images": images, "eval_every": eval_every,
                "kind": kind}
    results = []
    for variant in variants:
        spec = variant.spec
        if layer is not None:
            spec = spec.replace(encoder=dataclasses.replace(spec.encoder, layer=layer))
        store = MaskStore(out / "masks" / variant.masks) if variant.masks else None
        if store is not None and store.spec:  # the model names the masks it reads: the store's segmenter
            spec = spec.replace(segmenter=SegmenterSpec.parse(str(store.spec)))
        folder = out / "relation" / (slug(variant.label) + ("" if layer is None else f"-layer{layer}")
                                     + ("" if kind == "relation" else f"-{kind}"))
        for seed in range(seeds):
            path = folder / f"seed{seed}.json"
            if path.is_file():
                done = json.loads(path.read_text())
                if as_written(done.get("settings", {}), {"kind": "relation"}) != settings:  # older: relations
                    raise ValueError(f"{path} was run with {done.get('settings')}, not {settings}; remove it or "
                                     "run with its settings")
                results.append(done)
                continue
            torch.manual_seed(seed)
            model, processor = og.build(spec, tokenizer=str(out / "tokenizer"), encoder_path=str(out / "encoder"),
                                        mask_store=store, chat_template="tokenizer")
            report = relation_curve(model, processor, out / "data", images=images, steps=steps, batch=batch, lr=lr,
                                    seed=seed, eval_every=eval_every, mask_store=store, kind=kind,
                                    on_eval=None if on_eval is None else
                                    (lambda point, label=variant.label, s=seed: on_eval(label, s, point)))
            result = {"label": variant.label, "spec": spec.id, "settings": settings, **report}
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)  # a killed run never leaves a half-written result
            results.append(result)
    return results
