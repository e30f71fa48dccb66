"""ARO's word-order perturbations (COCO-Order, Flickr30k-Order), as the ARO authors' code makes them.

For each caption the official code (`dataset_zoo/aro_datasets.py`, `perturbations.py`) builds five
options: the caption, then four perturbations, each passed through `pre_caption` (lower case,
`.!"()*#:;~` removed, at most 30 words):
1. shuffle the nouns among themselves and the adjectives among themselves (spaCy tags NN* / JJ*);
2. shuffle every word that is neither a noun nor an adjective;
3. shuffle the words within each trigram;
4. shuffle the trigrams.
Here the four draw from one generator per item (seeded by the benchmark seed and the item id),
so a run is reproducible and an item's options do not depend on the others; the official code
draws from the global numpy / random state instead, and tokenises 3-4 with NLTK where this uses
the tagger's tokens. A tagger maps captions to their (token, Penn Treebank tag) lists; the default
is spaCy's `en_core_web_sm`, which is not a dependency of og: `spacy_tagger` says how to get it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

Tagged = list[tuple[str, str]]  # (token, fine-grained Penn Treebank tag)
Tagger = Callable[[Sequence[str]], list[Tagged]]

NOUNS = frozenset({"NN", "NNS", "NNP", "NNPS"})
ADJECTIVES = frozenset({"JJ", "JJR", "JJS"})
MAX_WORDS = 30
_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")
SPACY_MODEL = "en_core_web_sm"


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """ARO's caption cleaning: lower case, `.!"()*#:;~` to spaces, single spaces, at most `max_words` words."""
    text = re.sub(r"\s{2,}", " ", _PUNCTUATION.sub(" ", caption.lower())).rstrip("\n").strip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


def _shuffle_where(tokens: list[str], chosen: list[int], rng: random.Random) -> list[str]:
    """`tokens` with the tokens at the `chosen` positions permuted among themselves."""
    values = [tokens[i] for i in chosen]
    rng.shuffle(values)
    out = list(tokens)
    for i, value in zip(chosen, values, strict=True):
        out[i] = value
    return out


def shuffle_nouns_and_adjectives(tagged: Tagged, rng: random.Random) -> str:
    tokens = [t for t, _ in tagged]
    tokens = _shuffle_where(tokens, [i for i, (_, tag) in enumerate(tagged) if tag in NOUNS], rng)
    tokens = _shuffle_where(tokens, [i for i, (_, tag) in enumerate(tagged) if tag in ADJECTIVES], rng)
    return " ".join(tokens)


def shuffle_all_but_nouns_and_adjectives(tagged: Tagged, rng: random.Random) -> str:
    others = [i for i, (_, tag) in enumerate(tagged) if tag not in NOUNS | ADJECTIVES]
    return " ".join(_shuffle_where([t for t, _ in tagged], others, rng))


def trigrams(tokens: list[str]) -> list[list[str]]:
    """Consecutive groups of three tokens (the last may be shorter)."""
    return [tokens[i:i + 3] for i in range(0, len(tokens), 3)]


def shuffle_within_trigrams(tagged: Tagged, rng: random.Random) -> str:
    groups = trigrams([t for t, _ in tagged])
    for group in groups:
        rng.shuffle(group)
    return " ".join(" ".join(group) for group in groups)


def shuffle_trigrams(tagged: Tagged, rng: random.Random) -> str:
    groups = trigrams([t for t, _ in tagged])
    rng.shuffle(groups)
    return " ".join(" ".join(group) for group in groups)


# in the official order of the options after the caption
PERTURBATIONS = (shuffle_nouns_and_adjectives, shuffle_all_but_nouns_and_adjectives, shuffle_within_trigrams,
                 shuffle_trigrams)


def order_options(caption: str, tagged: Tagged, rng: random.Random, max_words: int = MAX_WORDS) -> list[str]:
    """The caption and its four perturbations, all through `pre_caption` (the right one first)."""
    return [pre_caption(caption, max_words), *(pre_caption(p(tagged, rng), max_words) for p in PERTURBATIONS)]


def spacy_tagger(model: str = SPACY_MODEL) -> Tagger:
    """spaCy's tagger (`en_core_web_sm` by default); a clear error saying how to install it when absent."""
    how = f"pip install spacy && python -m spacy download {model}"
    try:
        import spacy
    except ImportError:
        raise ImportError(f"building ARO's Order sets needs spaCy's part-of-speech tags and spaCy is not installed; "
                          f"run `{how}`, or give a prebuilt coco_order / flickr30k_order table") from None
    try:
        nlp = spacy.load(model, disable=["parser", "ner", "lemmatizer"])
    except OSError:
        raise ImportError(f"spaCy's English model {model!r} is not installed; run `{how}`, or give a prebuilt "
                          "coco_order / flickr30k_order table") from None

    def tag(captions: Sequence[str]) -> list[Tagged]:
        return [[(t.text, t.tag_) for t in doc] for doc in nlp.pipe(captions, batch_size=256)]

    return tag
