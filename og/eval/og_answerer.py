"""`OGAnswerer`: answers queries with an og model and its processor (`og.load(dir)`).

Each query becomes one user turn, `<image>\\n<prompt>`, rendered with the model's chat template
and a generation prompt; batches are padded on the left and the model masks the padding, so an
answer does not depend on its batch-mates. `generate` decodes greedily; `loglikelihood` appends
each option's text as the assistant's answer and sums the log-probabilities of its tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from og.eval.answer import Answerer, Query
from og.fusion.counts import LayoutCounts


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class OGAnswerer(Answerer):
    """Answers with an og model; `needs_masks` follows the model's fusion (masks for all but `patches`)."""

    def __init__(self, model: Any, processor: Any, path: str | None = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.path = path
        self.needs_masks = bool(processor.uses_masks)
        self.layout_counts = LayoutCounts()  # what the fusion did to each query's image (og.fusion.counts)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, dtype: str | None = None) -> OGAnswerer:
        import og

        model, processor = og.load(path, device=device, dtype=dtype)
        return cls(model, processor, path=str(path))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def describe(self) -> dict[str, Any]:
        spec = getattr(self.model.config, "model_spec", None)
        return {"name": "og", "spec": spec.id if spec is not None else None, "path": self.path,
                "chat_template": getattr(self.processor, "chat_template", None)}

    def context(self, query: Query) -> str:
        """The rendered user turn and generation prompt of a query."""
        content = query.prompt if query.image is None else f"{self.processor.image_token}\n{query.prompt}"
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)

    def _inputs(self, texts: list[str], queries: list[Query], counted: list[bool] | None = None) -> dict[str, Any]:
        """The processor's batch; the layouts of the images of the `counted` texts (all by default) are counted."""
        masks = [q.masks for q in queries] if self.needs_masks else None
        batch = self.processor(texts, [q.image for q in queries], masks=masks, keys=[q.key for q in queries],
                               padding_side="left")
        with_image = [c for q, c in zip(queries, counted or [True] * len(queries), strict=True) if q.image is not None]
        self.layout_counts.add(batch.get("layout"), images=[i for i, c in enumerate(with_image) if c])
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}

    @torch.inference_mode()
    def generate(self, queries: list[Query], max_new_tokens: int) -> list[str]:
        inputs = self._inputs([self.context(q) for q in queries], queries)
        tok = self.processor.tokenizer
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  pad_token_id=tok.pad_token_id)  # (B, L + new)
        new = out[:, inputs["input_ids"].shape[1]:]  # (B, new)
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

    def _n_continuation(self, context: str, continuation: str) -> int:
        """Tokens of the continuation at the end of `context + continuation` (merges at the seam count)."""
        tok = self.processor.tokenizer
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        full = tok(context + continuation, add_special_tokens=False)["input_ids"]
        n = len(full) - _common_prefix(ctx, full)
        if n < 1:
            raise ValueError(f"continuation {continuation!r} adds no token to its context; give a non-empty option")
        return n

    def loglikelihood(self, queries: list[Query], continuations: list[list[str]]) -> list[list[float]]:
        return [[lp for lp, _ in row] for row in self.score_continuations(queries, continuations)]

    @torch.inference_mode()
    def score_continuations(self, queries: list[Query], continuations: list[list[str]]
                            ) -> list[list[tuple[float, bool]]]:
        """(summed log-likelihood, whether greedy decoding would produce it) per continuation."""
        flat_q, texts, counts, first = [], [], [], []
        for q, conts in zip(queries, continuations, strict=True):
            ctx = self.context(q)
            for j, c in enumerate(conts):
                flat_q.append(q)
                texts.append(ctx + c)
                counts.append(self._n_continuation(ctx, c))
                first.append(j == 0)  # an image is counted once, not once per option
        inputs = self._inputs(texts, flat_q, first)
        keep = max(counts) + 1
        logits = self.model(**inputs, use_cache=False, logits_to_keep=keep).logits  # (N, keep, V)
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (N, keep-1, V): predicts the last keep-1
        targets = inputs["input_ids"][:, -(keep - 1):]  # (N, keep-1)
        token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N, keep-1)
        greedy = logprobs.argmax(-1) == targets  # (N, keep-1)
        scores = [(float(token_lp[i, -n:].sum()), bool(greedy[i, -n:].all())) for i, n in enumerate(counts)]
        out, at = [], 0
        for conts in continuations:
            out.append(scores[at:at + len(conts)])
            at += len(conts)
        return out
