"""SugarCrepe: seven JSON files, every pair asked with the positive caption first and second."""

import json

import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.benchmarks.sugarcrepe import FILES, SugarCrepe
from og.eval.runner import evaluate


def write_sugarcrepe(root, image_writer, per_file=2, files=FILES):
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        data = {str(i): {"filename": f"{i:012d}.jpg", "caption": f"{name} right {i}",
                         "negative_caption": f"{name} wrong {i}"} for i in range(per_file)}
        (root / f"{name}.json").write_text(json.dumps(data))
    for i in range(per_file):
        image_writer(root / "val2017" / f"{i:012d}.jpg", seed=i)
    return root


def test_read_two_orders(tmp_path, image_writer):
    items = SugarCrepe().read(write_sugarcrepe(tmp_path / "sc", image_writer))
    assert len(items) == 7 * 2 * 2
    first, second = items[0], items[1]
    assert first.id == "add_att/0/pos_first" and second.id == "add_att/0/pos_second"
    assert first.options == ["add_att right 0", "add_att wrong 0"] and first.answer == 0
    assert second.options == ["add_att wrong 0", "add_att right 0"] and second.answer == 1
    assert first.image.endswith("val2017/000000000000.jpg")


def test_both_orders_reported_and_averaged(tmp_path, image_writer, scripted):
    bench = SugarCrepe()
    items = bench.read(write_sugarcrepe(tmp_path / "sc", image_writer), files="add_att,swap_obj")
    # a model that always says "A": right whenever the positive is first, wrong when second
    run = evaluate(bench, items, scripted({it.id: "A" for it in items}))
    s = run["scores"]
    assert s["pos_first"] == 100.0 and s["pos_second"] == 0.0
    assert s["add_att"] == s["swap_obj"] == 50.0 and s["mean"] == 50.0
    # add_att: first order 2/2, second 1/2 -> 75; swap_obj: 0/2 and 1/2 -> 25; mean 50
    script = {"add_att/0/pos_first": "A", "add_att/1/pos_first": "A", "add_att/0/pos_second": "B",
              "swap_obj/1/pos_second": "(b)"}
    s = evaluate(bench, items, scripted(script))["scores"]
    assert s["add_att/pos_first"] == 100.0 and s["add_att/pos_second"] == 50.0 and s["add_att"] == 75.0
    assert s["swap_obj/pos_first"] == 0.0 and s["swap_obj/pos_second"] == 50.0 and s["swap_obj"] == 25.0
    assert s["mean"] == 50.0
    assert s["pos_first"] == 50.0 and s["pos_second"] == 50.0


def test_likelihood_is_order_free(tmp_path, image_writer, scripted):
    bench = SugarCrepe()
    items = bench.read(write_sugarcrepe(tmp_path / "sc", image_writer, per_file=1), files="add_obj")
    script = {it.id: [0.0 if "right" in o else -3.0 for o in it.options] for it in items}
    s = evaluate(bench, items, scripted(script), mode="likelihood")["scores"]
    assert s["pos_first"] == s["pos_second"] == s["mean"] == 100.0


def test_bad_input(tmp_path, image_writer):
    root = write_sugarcrepe(tmp_path / "sc", image_writer, files=("add_att",))
    with pytest.raises(FileNotFoundError, match="add_obj.json"):
        SugarCrepe().read(root)
    (root / "add_obj.json").write_text(json.dumps({"0": {"image": "x.jpg", "caption": "c"}}))
    with pytest.raises(BenchmarkFormatError, match="expected columns id, filename, caption, negative_caption"):
        SugarCrepe().read(root, files="add_obj")
    (root / "add_obj.json").write_text(json.dumps([1, 2]))
    with pytest.raises(BenchmarkFormatError, match="expected a list of records"):
        SugarCrepe().read(root, files="add_obj")
