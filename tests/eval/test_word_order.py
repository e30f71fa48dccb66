"""ARO's word-order perturbations: pre_caption, the four shuffles (with a stand-in tagger), seeding,
and the message when spaCy is missing."""

import random
import sys

import pytest

from og.eval import word_order as wo

CAPTION = "A small brown dog catches a green frisbee in the sunny park."


def test_pre_caption_as_aro():
    assert wo.pre_caption("A Man (riding) a horse!  On the beach.") == "a man riding a horse on the beach"
    assert wo.pre_caption("x, y's: z~") == "x, y's z"  # only .!"()*#:;~ go
    assert wo.pre_caption(" ".join(f"w{i}" for i in range(40))) == " ".join(f"w{i}" for i in range(30))


def _of(words, kinds, keep):
    return [w for w, k in zip(words, kinds, strict=True) if k in keep]


def test_each_shuffle_moves_only_what_it_should(stand_in_tagger):
    (tagged,) = stand_in_tagger([CAPTION])
    tokens = [t for t, _ in tagged]
    kinds = ["n" if tag == "NN" else "j" if tag == "JJ" else "o" for _, tag in tagged]
    for seed in range(5):
        out = wo.shuffle_nouns_and_adjectives(tagged, random.Random(seed)).split(" ")
        assert _of(out, kinds, "o") == _of(tokens, kinds, "o")  # the others stay in place
        assert all(sorted(_of(out, kinds, k)) == sorted(_of(tokens, kinds, k)) for k in "nj")  # nouns among nouns
        out = wo.shuffle_all_but_nouns_and_adjectives(tagged, random.Random(seed)).split(" ")
        assert _of(out, kinds, "nj") == _of(tokens, kinds, "nj") and sorted(out) == sorted(tokens)
        out = wo.shuffle_within_trigrams(tagged, random.Random(seed)).split(" ")
        assert all(sorted(out[i:i + 3]) == sorted(tokens[i:i + 3]) for i in range(0, len(tokens), 3))
        assert sorted(wo.shuffle_trigrams(tagged, random.Random(seed)).split(" ")) == sorted(tokens)
    moved = {wo.shuffle_nouns_and_adjectives(tagged, random.Random(s)) for s in range(5)}
    assert len(moved) > 1  # it does shuffle
    assert wo.trigrams(list("abcdefg")) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_trigram_shuffle_keeps_trigrams_whole():
    tagged = [(w, "NN") for w in "a1 a2 a3 b1 b2 b3 c1 c2 c3".split()]
    for seed in range(5):
        out = wo.shuffle_trigrams(tagged, random.Random(seed)).split(" ")
        assert {"".join(out[i:i + 3]) for i in (0, 3, 6)} == {"a1a2a3", "b1b2b3", "c1c2c3"}


def test_order_options_are_seeded_and_pre_captioned(stand_in_tagger):
    (tagged,) = stand_in_tagger([CAPTION])
    a = wo.order_options(CAPTION, tagged, random.Random("0/coco_order/3"))
    assert a == wo.order_options(CAPTION, tagged, random.Random("0/coco_order/3"))
    assert a[0] == "a small brown dog catches a green frisbee in the sunny park" and len(a) == 5
    assert all(o == wo.pre_caption(o) for o in a)  # every option went through pre_caption
    assert all(sorted(o.split()) == sorted(a[0].split()) for o in a[1:])  # the same words, reordered
    others = {tuple(wo.order_options(CAPTION, tagged, random.Random(f"{s}/coco_order/3"))) for s in range(5)}
    assert len(others) > 1


def test_missing_spacy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(ImportError, match=r"pip install spacy && python -m spacy download en_core_web_sm"):
        wo.spacy_tagger()
