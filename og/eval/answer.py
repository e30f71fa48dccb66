"""The answerer interface the runner poses questions through, and the two answering modes.

- `generate`: greedy decoding of the prompt (question, lettered options, "answer with the letter");
  the text is read with `og.eval.parse.parse_choice`.
- `likelihood`: every option's text is scored by the model's summed log-likelihood as the answer to
  the likelihood context; the best option wins (ties: the first). No parsing.

A `Query` carries everything one item needs (its id as `key`, prompt, image, masks), so side data
travels with the item and never depends on the position of the item in a batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from PIL import Image

from og.eval.base import Item
from og.eval.parse import parse_choice
from og.masks.masks import Masks

MODES = ("generate", "likelihood")


@dataclass
class Query:
    """One request: `key` (the item id), the user prompt, the image and its masks (or None)."""

    key: str
    prompt: str
    image: Image.Image | None = None
    masks: Masks | None = None


class Answerer(ABC):
    """Answers batches of queries; both methods return one result per query, in the given order."""

    #: whether queries need masks (an object-guided model); the runner then supplies them
    needs_masks: bool = False

    @abstractmethod
    def generate(self, queries: list[Query], max_new_tokens: int) -> list[str]:
        """Greedy answers, one text per query."""

    @abstractmethod
    def loglikelihood(self, queries: list[Query], continuations: list[list[str]]) -> list[list[float]]:
        """Summed log-likelihood of each continuation as the answer to its query."""

    def describe(self) -> dict[str, Any]:
        """What the results record about the model (its spec id, path, ...)."""
        return {"name": type(self).__name__}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"answer mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def pick_best(scores: list[float]) -> int:
    """Index of the highest score; the first one on a tie (deterministic)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def query_for(item: Item, mode: str, image: Image.Image | None, masks: Masks | None) -> Query:
    prompt = item.generate_prompt() if mode == "generate" else item.likelihood_context()
    return Query(key=item.id, prompt=prompt, image=image, masks=masks)


def answer_batch(answerer: Answerer, mode: str, items: list[Item], queries: list[Query],
                 max_new_tokens: int = 16) -> dict[str, dict[str, Any]]:
    """item id -> {"prediction": index | None, "output": text} or {"prediction", "scores": [...]}."""
    if [q.key for q in queries] != [it.id for it in items]:
        raise ValueError("queries must be built from the items they answer, in the same order")
    if mode == "generate":
        texts = answerer.generate(queries, max_new_tokens=max_new_tokens)
        _check_len(texts, queries, "generate")
        pairs = zip(items, texts, strict=True)
        return {it.id: {"prediction": parse_choice(t, it.options), "output": t} for it, t in pairs}
    scores = answerer.loglikelihood(queries, [it.options for it in items])
    _check_len(scores, queries, "loglikelihood")
    return {
        it.id: {"prediction": pick_best(s), "scores": [float(x) for x in s]}
        for it, s in zip(items, scores, strict=True)
    }


def _check_len(results: list, queries: list[Query], what: str) -> None:
    if len(results) != len(queries):
        raise RuntimeError(f"answerer.{what} returned {len(results)} results for {len(queries)} queries")
