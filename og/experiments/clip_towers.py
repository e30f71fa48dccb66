"""The text tower and the image-text similarities of the CLIP stand-in (`og.experiments.clip_pretrain`).

Three ways to compare B images with T texts (`pooling`):
- `mean` (CLIP): the patch features mean-pooled, one vector per side, cosine similarity;
- `tokens` (FILIP, Yao et al. 2021): late interaction, each word's best patch averaged over the
  words (image-to-text) and each patch's best word averaged over the patches (text-to-image);
- `objects` (region-phrase alignment, as RegionCLIP / GLIP pretrain region features on phrases):
  the image side is one vector per mask (the mask-weighted mean of the patch features: what
  object-guided tokens group), the text side one vector per noun phrase of the caption (split at
  commas and "and"); a pair's similarity is the mean over the phrases of each phrase's best mask.
  Which mask a phrase names is never given: the max finds it, so no generator label is a target.

`phrase_loss` adds a region-concept term (RegionCLIP): each phrase of an image's caption against
every distinct phrase text of the batch (its captions' and their hard negatives'), scored by the
image's best mask, the image's other phrases left out; an InfoNCE per phrase, not per caption.

`word_loss` goes down to single tokens (as FILIP aligns tokens, at the level of a phrase's region): every
patch of a phrase's best-matching mask picks each word of its phrase against the batch's words the phrase
lacks (a multi-positive InfoNCE, words embedded alone by the text tower), weighted by the mask's patch
weights. Pooled objectives leave an object's shape in the pool of its tokens; this one asks each token
for it (`og probe --pool token` measures it).
"""


from __future__ import annotations

import re

import torch
from torch import nn

WORD = re.compile(r"[a-z]+|[^\sa-z]")
PHRASE_SPLIT = re.compile(r",|\band\b")


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
        used = (ids != 0).any(0).nonzero()  # the columns some text reaches: trailing pad is never attended to
        ids = ids[:, : int(used.max()) + 1 if len(used) else 1]  # (B, L') a phrase is ~4 words of a caption's ~15
        rows, inverse = torch.unique(ids, dim=0, return_inverse=True)  # (U, L') a batch repeats its phrases
        keep = (rows != 0).unsqueeze(-1).float()  # (U, L', 1)
        return ((self.tokens(rows) * keep).sum(1) / keep.sum(1).clamp_min(1.0))[inverse]  # (B, E)


def encode_words(texts: list[str], vocab: dict[str, int], length: int) -> torch.Tensor:
    """Word ids (N, length), 0 = pad, 1 = a word not in `vocab`."""
    ids = torch.zeros(len(texts), length, dtype=torch.long)  # (N, L)
    for i, text in enumerate(texts):
        words = [vocab.get(w, 1) for w in WORD.findall(text)][:length]
        ids[i, : len(words)] = torch.tensor(words, dtype=torch.long)
    return ids


def phrases(caption: str) -> list[str]:
    """The caption's noun phrases: "a large red circle, a small blue square and a green cross." ->
    ["a large red circle", "a small blue square", "a green cross"]."""
    return [p.strip(" .") for p in PHRASE_SPLIT.split(caption.strip(" .")) if p.strip(" .")]


def phrase_ids(captions: list[str], vocab: dict[str, int], max_phrases: int, length: int) -> torch.Tensor:
    """Word ids (T, Q, length) of each caption's first `max_phrases` phrases (all-pad rows: none)."""
    ids = torch.zeros(len(captions), max_phrases, length, dtype=torch.long)  # (T, Q, L)
    for t, caption in enumerate(captions):
        found = phrases(caption)[:max_phrases]
        if found:
            ids[t, : len(found)] = encode_words(found, vocab, length)
    return ids  # (T, Q, L)


def similarities(patches: torch.Tensor, text: TextTower, ids: torch.Tensor, head: nn.Module, pooling: str,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities (B images, T texts), image-to-text and text-to-image (module docstring).

    patches (B, P, D); ids (T, L) word ids, or (T, Q, L) phrase word ids for `objects`, which also
    needs `weights` (B, O, P): each mask's patch weights (rows summing to 1; all-zero rows pad)."""
    if pooling == "mean":
        img = nn.functional.normalize(head(patches.mean(1)), dim=-1)  # (B, E)
        sim = img @ nn.functional.normalize(text(ids), dim=-1).T  # (B, T)
        return sim, sim
    if pooling == "objects":
        if weights is None:
            raise ValueError("pooling='objects' needs the masks' patch weights (B, O, P)")
        objects = object_embeddings(patches, head, weights)  # (B, O, E)
        present = weights.sum(-1) > 0  # (B, O)
        said = ids[..., 0] != 0  # (T, Q) the phrases there are (an all-pad row would attend to nothing)
        found = nn.functional.normalize(text(ids[said]), dim=-1)  # (F, E)
        words = found.new_zeros(*said.shape, found.shape[-1])  # (T, Q, E)
        words[said] = found
        sim = torch.einsum("boe,tqe->btoq", objects, words)  # (B, T, O, Q)
        best = sim.masked_fill(~present[:, None, :, None], -2.0).amax(2)  # (B, T, Q) each phrase's best mask
        sim = (best * said).sum(-1) / said.sum(-1).clamp_min(1)  # (B, T)
        return sim, sim
    img = nn.functional.normalize(head(patches), dim=-1)  # (B, P, E)
    words = nn.functional.normalize(text.tokens(ids), dim=-1)  # (T, L, E)
    keep = (ids != 0).float()  # (T, L)
    sim = torch.einsum("bpe,tle->btpl", img, words)  # (B, T, P, L)
    i2t = (sim.amax(2) * keep).sum(-1) / keep.sum(-1).clamp_min(1.0)  # (B, T)
    t2i = sim.masked_fill(keep[None, :, None, :] == 0, -2.0).amax(3).mean(2)  # (B, T)
    return i2t, t2i


def object_embeddings(patches: torch.Tensor, head: nn.Module, weights: torch.Tensor) -> torch.Tensor:
    """Each mask's pooled patch features, projected and normalized: (B, P, D), (B, O, P) -> (B, O, E)."""
    return nn.functional.normalize(head(weights @ patches), dim=-1)  # (B, O, E)


def phrase_loss(objects: torch.Tensor, present: torch.Tensor, captions: list[str], candidates: list[str],
                text: TextTower, vocab: dict[str, int], length: int, scale: torch.Tensor) -> torch.Tensor:
    """Per-phrase InfoNCE (module docstring). objects (B, O, E) normalized, present (B, O); captions:
    the B images' captions; candidates: more captions whose phrases join the pool (hard negatives)."""
    own = [phrases(c) for c in captions]
    pool = sorted({q for c in captions + candidates for q in phrases(c)})
    index = {q: i for i, q in enumerate(pool)}
    words = nn.functional.normalize(text(encode_words(pool, vocab, length)), dim=-1)  # (U, E)
    sim = torch.einsum("boe,ue->bou", objects, words)  # (B, O, U)
    best = sim.masked_fill(~present[..., None], -2.0).amax(1)  # (B, U) each text's best mask per image
    rows, targets, hide = [], [], torch.zeros(sum(len(q) for q in own), len(pool), dtype=torch.bool)
    for b, qs in enumerate(own):
        for q in qs:
            hide[len(rows), [index[o] for o in qs if o != q]] = True  # the image's other objects are no negatives
            rows.append(b)
            targets.append(index[q])
    logits = (scale * best[torch.tensor(rows)]).masked_fill(hide, float("-inf"))  # (N phrases, U)
    return nn.functional.cross_entropy(logits, torch.tensor(targets))


def word_loss(tokens: torch.Tensor, objects: torch.Tensor, weights: torch.Tensor, captions: list[str],
              text: TextTower, vocab: dict[str, int], length: int, scale: torch.Tensor) -> torch.Tensor:
    """Per-token word InfoNCE (module docstring). tokens (B, P, E) and objects (B, O, E) normalized,
    weights (B, O, P) each mask's patch weights (all-zero rows: no mask); captions: the B images'."""
    own = [phrases(c) for c in captions]
    flat = [q for qs in own for q in qs]
    rows = torch.tensor([b for b, qs in enumerate(own) for _ in qs])  # (N,) each phrase's image
    said = nn.functional.normalize(text(encode_words(flat, vocab, length)), dim=-1)  # (N, E)
    fit = torch.einsum("noe,ne->no", objects[rows], said)  # (N, O)
    region = fit.masked_fill(weights[rows].sum(-1) == 0, -2.0).argmax(1)  # (N,) each phrase's best mask
    split = [set(WORD.findall(q)) for q in flat]  # each phrase's words
    words = sorted(set().union(*split))
    member = torch.tensor([[w in said_words for w in words] for said_words in split])  # (N, V)
    embedded = nn.functional.normalize(text(encode_words(words, vocab, 1)), dim=-1)  # (V, E)
    logits = scale * tokens[rows] @ embedded.T  # (N, P, V)
    others = logits.masked_fill(member[:, None], float("-inf")).logsumexp(-1, keepdim=True)  # (N, P, 1)
    per_word = (torch.logaddexp(logits, others) - logits) * member[:, None]  # (N, P, V) -log p(word)
    per_token = per_word.sum(-1) / member.sum(-1, keepdim=True)  # (N, P)
    return (per_token * weights[rows, region]).sum(1).mean()


def position_loss(patches: torch.Tensor, head: nn.Module, grid: tuple[int, int]) -> torch.Tensor:
    """Each token names its own row and column of the patch grid (a label-free pretext: the patch index
    is the input's own, as in Zhai et al. 2022's position prediction, without masking the position
    embeddings). patches (B, P, D) with P = h * w; head: a linear map D -> h + w."""
    h, w = grid
    logits = head(patches)  # (B, P, h + w)
    rows = torch.arange(h).repeat_interleave(w).expand(len(patches), -1)  # (B, P)
    cols = torch.arange(w).repeat(h).expand(len(patches), -1)  # (B, P)
    return 0.5 * (nn.functional.cross_entropy(logits[..., :h].flatten(0, 1), rows.flatten())
                  + nn.functional.cross_entropy(logits[..., h:].flatten(0, 1), cols.flatten()))
