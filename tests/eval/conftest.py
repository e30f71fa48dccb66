"""Shared helpers of the eval tests: tiny generated images and a scripted answerer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from og.eval.answer import Answerer, Query


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (24, 32)) -> Path:
    """A small random RGB image (H, W) = size, saved by extension (.jpg / .png)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


class ScriptedAnswerer(Answerer):
    """Answers from a script keyed by item id: a text (generate) or option scores (likelihood)."""

    def __init__(self, script: dict[str, object], needs_masks: bool = False) -> None:
        self.script = script
        self.needs_masks = needs_masks
        self.calls: list[list[Query]] = []

    def generate(self, queries, max_new_tokens):
        self.calls.append(queries)
        return [str(self.script.get(q.key, "")) for q in queries]

    def loglikelihood(self, queries, continuations):
        self.calls.append(queries)
        return [list(self.script.get(q.key, [0.0] * len(c))) for q, c in zip(queries, continuations, strict=True)]

    def describe(self):
        return {"name": "scripted"}


def make_tiny_tokenizer():
    """A small word-level tokenizer with a chat-ready vocabulary, built locally."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ("which colour is the shape really red green blue answer with option's letter from given choices "
             "directly user assistant").split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<unk>", "<s>", "</s>", "<pad>", *words, *"abcdeABCDE.,:?!'"]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", chat_template=template)


@pytest.fixture
def tiny_tokenizer():
    return make_tiny_tokenizer


@pytest.fixture
def scripted():
    return ScriptedAnswerer


@pytest.fixture
def image_writer():
    return write_image


NOUNS = {"man", "horse", "beach", "dog", "frisbee", "park"}
ADJECTIVES = {"brown", "small", "sunny", "green"}


def _stand_in_tagger(captions):
    """Penn tags from word lists: NN for nouns, JJ for adjectives, DT/IN/VB/punctuation otherwise."""
    def tag(token):
        low = token.lower()
        if low in NOUNS:
            return "NN"
        if low in ADJECTIVES:
            return "JJ"
        return "DT" if low in {"a", "the"} else ("." if not token.isalnum() else "VB")
    return [[(t, tag(t)) for t in re.findall(r"\w+|[^\w\s]", c)] for c in captions]


@pytest.fixture
def stand_in_tagger():
    """A tagger for ARO's word-order shuffles that needs no spaCy model."""
    return _stand_in_tagger
