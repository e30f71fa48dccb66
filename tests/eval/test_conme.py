"""ConMe: the three partition CSVs, accuracy per partition and their mean, bad input."""

import csv

import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.benchmarks.conme import ConMe, coco_filename, lettered_options
from og.eval.runner import evaluate

COLUMNS = ["image", "question", "answer", "base_question", "correct_option", "incorrect_option", "question_format"]


def row(image, answer, right, wrong):
    a, b = (right, wrong) if answer == "A" else (wrong, right)
    question = f"What is shown? A) {a} B) {b}"
    return [image, question, answer, "What is shown?", right, wrong, "multiple_choice"]


def write_conme(root, image_writer, partitions):
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in partitions.items():
        with open(root / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        for r in rows:
            image_writer(root / "images" / coco_filename(r[0]), seed=len(r[0]))
    return root


PARTS = {
    "replace-att": [row("397133", "A", "a red car", "a blue car"),
                    row("000000000139.jpg", "B", "a tall man", "a short man")],
    "replace-obj": [row("785", "B", "a dog", "a cat"), row("872", "A", "a cup", "a bowl"), row("885", "A", "x", "y")],
    "replace-rel": [row("1000", "A", "a man on a horse", "a man under a horse")],
}


def test_coco_filename():
    assert coco_filename("397133") == coco_filename(397133) == coco_filename("397133.0") == "000000397133.jpg"
    assert coco_filename("000000000139.jpg") == coco_filename("images/000000000139.jpg") == "000000000139.jpg"


def test_published_images_prefix_resolves_under_a_coco_folder(tmp_path, image_writer):
    """The CSVs name `images/<COCO file>`; --images may be a plain val2017 folder (or hold images/)."""
    root = tmp_path / "conme"
    root.mkdir()
    (root / "replace-att.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(
        row("images/000000397133.jpg", "A", "a red car", "a blue car")) + "\n")
    coco = image_writer(tmp_path / "val2017" / "000000397133.jpg").parent
    items = ConMe().read(root, coco, partitions="replace-att")
    assert items[0].image == str(coco / "000000397133.jpg")
    assert items[0].image_key == "000000397133.jpg"  # the mask key SugarCrepe uses for the same image
    assert ConMe().read(root, tmp_path, partitions="replace-att")[0].image == str(tmp_path / "000000397133.jpg")
    image_writer(root / "images" / "000000397133.jpg")
    assert ConMe().read(root, partitions="replace-att")[0].image == str(root / "images" / "000000397133.jpg")
    assert ConMe().read(root, root, partitions="replace-att")[0].image == str(root / "images" / "000000397133.jpg")


def test_answer_letter_is_checked_against_the_options_in_the_question(tmp_path):
    good = row("785", "B", "a dog", "a cat")  # "A) a cat B) a dog", answer B
    bad = good[:2] + ["A"] + good[3:]  # the answer column says A, the question lists "a dog" as B
    unlisted = ["872", "Is it a cup or a bowl?", "A", "Q", "a cup", "a bowl", "mc"]
    path = tmp_path / "replace-obj.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, good, unlisted])
    bench = ConMe()
    assert len(bench.read(path)) == 2
    assert bench.notes["answers_checked"] == 1 and bench.notes["unverified_first"] == ["replace-obj/1"]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, good, bad])
    with pytest.raises(BenchmarkFormatError, match=r"replace-obj.csv row 2: answer 'A' but the question lists the "
                                                   r"correct option 'a dog' as B"):
        ConMe().read(path)


@pytest.mark.parametrize("question", ["Q? A) x y B) z", "Q?\nA. x y\nB. z\nAnswer with the letter.",
                                      "Q? (A) x y (B) z", "Q? (a) x y (b) z", "Options: A: x y B: z"])
def test_lettered_options(question):
    assert lettered_options(question) == ["x y", "z"]
    assert lettered_options("Is it A or B?") == []


def test_read(tmp_path, image_writer):
    items = ConMe().read(write_conme(tmp_path / "conme", image_writer, PARTS))
    assert len(items) == 6
    first = items[0]
    assert first.id == "replace-att/0" and first.options == ["a red car", "a blue car"] and first.answer == 0
    assert items[1].options == ["a short man", "a tall man"] and items[1].answer == 1
    assert first.image_key == "000000397133.jpg" and first.image.endswith("images/000000397133.jpg")
    assert first.generate_prompt().startswith("What is shown? A) a red car B) a blue car")
    assert first.likelihood_context() == "What is shown?"


def test_scores_per_partition_and_mean(tmp_path, image_writer, scripted):
    bench = ConMe()
    items = bench.read(write_conme(tmp_path / "conme", image_writer, PARTS))
    # att: 1/2 right; obj: 2/3 right ("a dog" as option text); rel: 0/1 (unparsable)
    script = {"replace-att/0": "A", "replace-att/1": "A", "replace-obj/0": "a dog", "replace-obj/1": "(a)",
              "replace-obj/2": "B", "replace-rel/0": "Both men"}
    run = evaluate(bench, items, scripted(script), batch_size=4)
    s = run["scores"]
    assert s["replace-att"] == pytest.approx(50.0)
    assert s["replace-obj"] == pytest.approx(200 / 3)
    assert s["replace-rel"] == pytest.approx(0.0)
    assert s["mean"] == pytest.approx((50 + 200 / 3 + 0) / 3)  # per-partition mean: an extra
    assert s["accuracy"] == pytest.approx(100 * 3 / 6)  # size-weighted over the partitions: the headline
    assert run["headline"][0] == "accuracy" and "mean" not in run["headline"]
    assert run["unanswered"] == 1
    assert run["notes"]["answers_checked"] == 6 and run["notes"]["answers_unverified"] == 0


def test_partitions_option_and_missing_file(tmp_path, image_writer):
    root = write_conme(tmp_path / "conme", image_writer, {"replace-att": PARTS["replace-att"]})
    with pytest.raises(FileNotFoundError, match="replace-obj.csv"):
        ConMe().read(root)
    assert len(ConMe().read(root, partitions="replace-att")) == 2
    with pytest.raises(ValueError, match="unknown partition 'replace-xyz'"):
        ConMe().read(root, partitions="replace-xyz")


def test_wrong_format(tmp_path):
    path = tmp_path / "replace-att.csv"
    path.write_text("image,question,answer\n1,Q,A\n")
    with pytest.raises(BenchmarkFormatError, match="expected columns image, question, answer, base_question"):
        ConMe().read(path)
    path.write_text(",".join(COLUMNS) + "\n1,Q,maybe,Q,x,y,mc\n")
    with pytest.raises(BenchmarkFormatError, match="answer 'maybe' is not a letter"):
        ConMe().read(path)
