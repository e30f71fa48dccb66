"""MMVP: reading Questions.csv, pair accuracy against a hand count, the known-errors fix, bad input."""

import csv

import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.benchmarks.mmvp import MMVP
from og.eval.runner import evaluate
from og.registry import BENCHMARKS

HEADER = ["Index", "Question", "Options", "Correct Answer"]


def write_mmvp(root, image_writer, rows, missing=()):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "Questions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    for row in rows:
        if row[0] not in missing:
            image_writer(root / "MMVP Images" / f"{row[0]}.jpg", seed=row[0])
    return root


ROWS = [
    [1, "Is the door open?", "(a) Open (b) Closed", "(a)"],
    [2, "Is the door open?", "(a) Open (b) Closed", "(b)"],
    [3, "Are the feet visible?", "(a) Yes (b) No", "(b)"],
    [4, "Are the feet visible?", "(a) Yes (b) No", "(a)"],
    [5, "Which way does it face?", "(a) Left (b) Right", "(a)"],
    [6, "Which way does it face?", "(a) Left (b) Right", "(b)"],
]


def test_registered():
    assert BENCHMARKS.get("mmvp") is MMVP


def test_read_items(tmp_path, image_writer):
    items = MMVP().read(write_mmvp(tmp_path / "mmvp", image_writer, ROWS))
    assert [it.id for it in items] == ["1", "2", "3", "4", "5", "6"]
    assert items[0].options == ["Open", "Closed"] and items[0].answer == 0 and items[1].answer == 1
    assert [it.fields["pair"] for it in items] == [0, 0, 1, 1, 2, 2]
    assert items[2].image.endswith("MMVP Images/3.jpg") and items[2].image_key == "3.jpg"
    assert "A. Open\nB. Closed" in items[0].generate_prompt()


def test_pair_accuracy_and_missing_image(tmp_path, image_writer, scripted):
    root = write_mmvp(tmp_path / "mmvp", image_writer, ROWS, missing=(6,))
    bench = MMVP()
    items = bench.read(root)
    # pair 0 both right; pair 1: 3 right, 4 wrong; pair 2: 5 right, 6 missing image -> wrong
    answers = scripted({"1": "A", "2": "(b)", "3": "B.", "4": "B", "5": "The answer is A", "6": "B"})
    run = evaluate(bench, items, answers, mode="generate", batch_size=2)
    assert run["scores"]["pair_accuracy"] == pytest.approx(100 / 3)
    assert run["scores"]["question_accuracy"] == pytest.approx(100 * 4 / 6)
    assert run["missing_images"] == 1 and run["missing_image_ids"] == ["6"]
    assert run["n_items"] == 6 and run["scores"]["pairs"] == 3
    posed = [q.key for call in answers.calls for q in call]
    assert sorted(posed) == ["1", "2", "3", "4", "5"]  # the missing image is never posed


def test_likelihood_mode_picks_best_option(tmp_path, image_writer, scripted):
    bench = MMVP()
    items = bench.read(write_mmvp(tmp_path / "mmvp", image_writer, ROWS[:2]))
    run = evaluate(bench, items, scripted({"1": [-1.0, -2.0], "2": [-0.5, -0.4]}), mode="likelihood")
    assert run["scores"]["pair_accuracy"] == 100.0
    assert run["predictions"][0]["scores"] == [-1.0, -2.0]


def test_fix_known_errors(tmp_path, image_writer):
    rows = [[i, "Q?", "(a) Long (b) Short", "(a)" if i % 2 else "(b)"] for i in range(97, 101)]
    rows += [[i, "Q?", "(a) Standing (b) Sitting", "(a)" if i % 2 else "(b)"] for i in range(279, 281)]
    root = write_mmvp(tmp_path / "mmvp", image_writer, rows)
    plain = {it.id: it.answer for it in MMVP().read(root)}
    bench = MMVP()
    fixed = {it.id: it.answer for it in bench.read(root, fix_known_errors=True)}
    assert (plain["99"], plain["100"], plain["279"], plain["280"]) == (0, 1, 0, 1)
    assert (fixed["99"], fixed["100"], fixed["279"], fixed["280"]) == (1, 0, 1, 0)
    assert fixed["97"] == plain["97"] and fixed["98"] == plain["98"]
    assert bench.notes["fix_known_errors"]["corrected"] == [99, 100, 279, 280]


def test_fix_known_errors_on_a_corrected_copy_changes_nothing(tmp_path, image_writer):
    rows = [[99, "Q?", "(a) Long (b) Short", "(b)"], [100, "Q?", "(a) Long (b) Short", "(a)"]]
    bench = MMVP()
    items = bench.read(write_mmvp(tmp_path / "m", image_writer, rows), fix_known_errors=True)
    assert [it.answer for it in items] == [1, 0]
    assert bench.notes["fix_known_errors"] == {"corrected": [], "already_correct": [99, 100]}


def test_wrong_columns_named(tmp_path):
    path = tmp_path / "Questions.csv"
    path.write_text("id,question,answer\n1,Q,(a)\n")
    with pytest.raises(BenchmarkFormatError) as err:
        MMVP().read(path)
    msg = str(err.value)
    assert str(path) in msg and "Index, Question, Options, Correct Answer" in msg and "id, question, answer" in msg


def test_bad_options_and_unknown_option(tmp_path, image_writer):
    root = write_mmvp(tmp_path / "m", image_writer, [[1, "Q?", "Open or Closed", "(a)"]])
    with pytest.raises(BenchmarkFormatError, match="'Open or Closed'"):
        MMVP().read(root)
    with pytest.raises(ValueError, match="no option 'seed'; valid: fix_known_errors"):
        MMVP().read(root, seed=1)
