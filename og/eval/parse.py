"""Reading a multiple-choice answer out of a generated text: the option letter, or the option's text.

Rules, in order (the first that decides wins; None when none does):
1. the whole answer is a letter, bracketed or not: "B", "(b)", "B.", "b)", "**B**";
2. it starts with a letter and a delimiter: "B. a cat", "(b) a cat", "b) a cat", "B: ..."; a word
   such as "Both" or an article ("A cat ...") is not a letter;
3. an explicit statement: "The answer is B", "answer: (b)", "Option B", "correct choice is b.";
   a lower-case "a" followed by more words ("the answer is a cat") is an article, not a letter;
4. the text of exactly one option (case and punctuation ignored), the longest option winning
   when one option's text contains another's: "a black cat" over "cat";
Letters beyond the number of options never count.
"""

from __future__ import annotations

import re

from og.eval.base import LETTERS

_ONLY_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?$")
_LEADING_LETTER = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s*(.*)$", re.S)
_STATED = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would be|should be|:))?\s*:?\s*(?:\(([A-Za-z])\)|([A-Za-z])\b(.?))",
    re.I,
)


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: what option texts are compared by."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _letter(letter: str, n_options: int) -> int | None:
    index = LETTERS.index(letter.upper())
    return index if index < n_options else None


def _stated_letter(text: str, n_options: int) -> int | None:
    for match in _STATED.finditer(text):
        bracketed, bare, after = match.groups()
        if bracketed:
            return _letter(bracketed, n_options)
        is_article = bare == "a" and after == " " and match.end() < len(text)  # "answer is a cat"
        if bare.isupper() or not is_article:
            return _letter(bare, n_options)
    return None


def _option_text(text: str, options: list[str]) -> int | None:
    said = f" {normalize(text)} "
    found = [i for i, opt in enumerate(options) if normalize(opt) and f" {normalize(opt)} " in said]
    # drop options whose text lies inside another found option's text ("cat" inside "black cat")
    found = [i for i in found if not any(j != i and normalize(options[i]) in normalize(options[j]) for j in found)]
    return found[0] if len(found) == 1 else None


def parse_choice(text: str, options: list[str]) -> int | None:
    """Index of the option a generated answer names, or None when it names none (or several)."""
    text = text.strip().replace("*", "").strip()
    if not text:
        return None
    n = len(options)
    if match := _ONLY_LETTER.match(text):
        return _letter(match.group(1), n)
    if match := _LEADING_LETTER.match(text):
        letter = match.group(1) or match.group(2)
        rest = match.group(3)
        # "a) ..." is a letter; "A. cat" too; but a leading "I." or "a." starting prose would be rare
        if rest == "" or _letter(letter, n) is not None:
            return _letter(letter, n)
    stated = _stated_letter(text, n)
    if stated is not None:
        return stated
    return _option_text(text, options)
