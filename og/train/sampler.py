"""Length-grouped sampling by modality (LLaVA's `group_by_modality_length`).

Image samples and text-only samples are never mixed within a mega-batch: the samples of one
optimizer update, world size x batch size x gradient accumulation steps (LLaVA's
`LLaVATrainer._get_train_sampler` passes `world_size * gradient_accumulation_steps`). Within
a mega-batch samples are sorted by length, longest first, so each micro-batch pads little;
an update still sums the gradients of the same samples, only their split into micro-batches
changes. Mega-batches are shuffled; the two modalities' incomplete
remainders form the last one. Deterministic for a seed and an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def modality_grouped_indices(lengths: list[int], megabatch: int, generator: torch.Generator) -> list[int]:
    """A permutation of range(len(lengths)); lengths > 0 are image samples, < 0 text-only."""
    full: list[list[int]] = []
    rest: list[int] = []
    for want_image in (True, False):
        idx = [i for i, n in enumerate(lengths) if (n > 0) == want_image]
        if not idx:
            continue
        perm = [idx[j] for j in torch.randperm(len(idx), generator=generator).tolist()]
        chunks = [perm[i: i + megabatch] for i in range(0, len(perm), megabatch)]
        chunks = [sorted(c, key=lambda i: -abs(lengths[i])) for c in chunks]
        if len(chunks[-1]) < megabatch:
            rest.extend(chunks.pop())
        full.extend(chunks)
    order = torch.randperm(len(full), generator=generator).tolist()
    out = [i for k in order for i in full[k]]
    return out + sorted(rest, key=lambda i: -abs(lengths[i]))


class ModalityLengthSampler(Sampler[int]):
    """Indices grouped by modality and length; `set_epoch` reshuffles."""

    def __init__(self, lengths: list[int], batch_size: int, world_size: int = 1, seed: int = 0,
                 accumulation: int = 1) -> None:
        self.lengths = list(lengths)
        self.megabatch = max(1, batch_size * world_size * accumulation)  # one optimizer update
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(modality_grouped_indices(self.lengths, self.megabatch, gen))
