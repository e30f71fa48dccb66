"""The answer parser on a table of messy generated answers."""

import pytest

from og.eval.parse import parse_choice

TWO = ["a dog", "a cat"]
TABLE = [
    ("B", TWO, 1), ("b", TWO, 1), ("B.", TWO, 1), ("(b)", TWO, 1), ("(B)", TWO, 1), ("b)", TWO, 1), ("B:", TWO, 1),
    ("**B**", TWO, 1), (" B\n", TWO, 1), ("A", TWO, 0), ("(a)", TWO, 0),
    ("b) a cat", TWO, 1), ("B. a cat", TWO, 1), ("(A) a dog", TWO, 0), ("B: a cat", TWO, 1),
    ("The answer is B", TWO, 1), ("The answer is B because it purrs.", TWO, 1), ("answer: (b)", TWO, 1),
    ("The correct option is (A).", TWO, 0), ("I think the correct choice is b.", TWO, 1), ("Option B", TWO, 1),
    ("the answer is a", TWO, 0),
    ("Both", TWO, None), ("Both are animals.", TWO, None), ("Both a dog and a cat", TWO, None),
    ("a cat", TWO, 1), ("A cat.", TWO, 1), ("It is a dog.", TWO, 0), ("The answer is a cat.", TWO, 1),
    ("a dog and a cat", TWO, None), ("", TWO, None), ("I cannot tell.", TWO, None),
    ("C", TWO, None), ("(c)", TWO, None), ("E", ["1", "2", "3", "4", "5"], 4),
    ("black cat", ["cat", "black cat"], 1), ("the cat", ["cat", "black cat"], 0),
    ("Yes", ["Yes", "No"], 0), ("no.", ["Yes", "No"], 1),
]


@pytest.mark.parametrize("text, options, expected", TABLE)
def test_parse_table(text, options, expected):
    assert parse_choice(text, options) == expected
