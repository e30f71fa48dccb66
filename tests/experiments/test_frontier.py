"""The frontier driver: the Pareto front against a naive reference, the sweep and its skips,
frontier.json's schema, the chart, and a reduced sweep at the `fast` size that resumes
(`og quickstart --frontier` a second time trains nothing); a budget no image reaches is run once."""

import json
import random
import statistics

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from og.eval.benchmarks.shapes import TYPES
from og.experiments import frontier
from og.experiments.frontier import (
    SWEEP,
    Entry,
    frontier_variants,
    most_tokens,
    run_frontier,
    skip_notice,
    unreached_budgets,
)
from og.experiments.frontier_report import (
    COMPOSITE,
    METRICS,
    composite_chance,
    frontier_chart,
    frontier_rows,
    goal,
    goal_line,
    pareto_front,
    write_frontier_json,
)
from og.experiments.quickstart import BASE, SIZES
from og.experiments.quickstart_data import prepare_data

SWEEP_BY_LABEL = {e.label: e for e in SWEEP}


def _naive_front(points):
    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])

    return [p[1] is not None and not any(q[1] is not None and dominates(q, p) for q in points) for p in points]


def test_pareto_front_matches_a_naive_reference():
    rng = random.Random(0)
    for _ in range(300):  # small integer grids: many ties in tokens, in accuracy and exact twins
        points = [(rng.randint(1, 6), rng.choice([None, *range(5)])) for _ in range(rng.randint(0, 9))]
        assert pareto_front(points) == _naive_front(points), points
    assert pareto_front([(64, 50.0), (8, 60.0), (4, 40.0), (8, 60.0), (16, 55.0)]) == [False, True, True, True,
                                                                                        False]


def test_sweep_covers_the_issue_and_skips_what_is_not_there():
    labels = {e.label for e in SWEEP}
    assert {"patches", "patchpool-k2", "patchpool-k4", "prune-random-4", "prune-cls-32", "masktoken-8",
            "masktoken-all", "roialign-16", "maskpool"} <= labels
    assert len(labels) == len(SWEEP) == 1 + 3 + 3 * 4 + 4 + 4 + 1
    extra = [Entry("nope", "nope", "nosuchfusion"), Entry("bad", "masktoken", "masktoken(nosuch=1)", masks=True)]
    runnable, skipped = frontier_variants([*SWEEP, *extra], BASE)
    by_label = {v.label: v for _, v in runnable}
    assert by_label["patches"].masks is None and by_label["patches"].spec.segmenter.name == "none"
    assert by_label["masktoken-8"].masks == "oracle" and by_label["masktoken-8"].spec.fusion.max_tokens == 8
    assert by_label["masktoken-all"].spec.fusion.max_tokens is None
    assert {e.label for e, _ in skipped} >= {"nope", "bad"}
    assert len(runnable) + len(skipped) == len(SWEEP) + 2
    notice = skip_notice(skipped, len(SWEEP) + 2)
    assert f"skipped {len(skipped)} of {len(SWEEP) + 2}" in notice and "'nosuchfusion' is not registered" in notice
    assert "nosuch" in dict((e.label, why) for e, why in skipped)["bad"]


def _result(label, seed, tokens, scores):
    return {"label": label, "spec": f"spec-{label}", "masks": None, "seed": seed, "train_seconds": 1.0,
            "visual_tokens": {"mean": tokens, "max": tokens, "images": 4}, "scores": {"test": scores}}


def test_frontier_json_schema_and_chart(tmp_path):
    rng = random.Random(1)
    results = [_result(label, seed, tokens, {"accuracy": rng.uniform(30, 90), **{t: rng.uniform(30, 90)
                                                                               for t in TYPES}})
               for label, tokens in (("patches", 64), ("pool-k2", 4), ("mask-8", 8.0), ("mask-all", 7.1))
               for seed in (0, 1, 2)]
    rows = frontier_rows(results, {"patches": "patches", "pool-k2": "patchpool", "mask-8": "masktoken",
                                   "mask-all": "masktoken"})
    path = write_frontier_json(tmp_path / "frontier.json", rows, {"seeds": 3})
    record = json.loads(path.read_text())
    assert record["composite_of"] == list(COMPOSITE) and set(record["fronts"]) == set(METRICS)
    assert [v["label"] for v in record["variants"]] == ["patches", "pool-k2", "mask-8", "mask-all"]
    for row in record["variants"]:
        runs = [r for r in results if r["label"] == row["label"]]
        per_seed = [statistics.mean(r["scores"]["test"][t] for t in COMPOSITE) for r in runs]
        assert row["composite"]["mean"] == pytest.approx(statistics.mean(per_seed))
        assert row["composite"]["sd"] == pytest.approx(statistics.stdev(per_seed))
        assert row["composite"]["n"] == 3 and row["seeds"] == [0, 1, 2]
        assert row["visual_tokens"] == runs[0]["visual_tokens"]["mean"]
        assert set(row["accuracy"]) == {"accuracy", *TYPES}
        assert row["accuracy"]["binding"]["mean"] == pytest.approx(
            statistics.mean(r["scores"]["test"]["binding"] for r in runs))
        assert set(row) >= {"label", "family", "spec", "masks", "pareto", "train_seconds"}
    points = [(v["visual_tokens"], v["composite"]["mean"]) for v in record["variants"]]
    assert [v["pareto"] for v in record["variants"]] == _naive_front(points)
    assert record["fronts"]["composite"] == [v["label"] for v in record["variants"] if v["pareto"]]

    chance = composite_chance({"accuracy": 40.0, "attribute": 25.0, "binding": 50.0, "relation": 50.0,
                               "replace": 50.0, "order": 20.0})
    assert chance["composite"] == pytest.approx(40.0)
    chart = frontier_chart(rows, tmp_path / "frontier.png", chance=chance)
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 400


def _row(label, tokens, mean, sd, masks=None):
    return {"label": label, "visual_tokens": tokens, "masks": masks, "composite": {"mean": mean, "sd": sd, "n": 3}}


def test_goal_compares_the_best_of_each_side_within_the_budget():
    rows = [_row("patches", 64, 70.0, 1.0), _row("prune-8", 8, 55.0, 2.0), _row("pool-k3", 9, 58.0, 1.0),
            _row("prune-16", 16, 69.0, 1.0), _row("mt-8", 7.5, 68.0, 1.5, "oracle"), _row("mt-32", 12, 80, 1, "oracle")]
    record = goal(rows)
    assert record["object_guided"]["label"] == "mt-8" and record["patch_baseline"]["label"] == "pool-k3"
    assert record["patches"]["label"] == "patches"
    assert record["gap"] == pytest.approx(10.0) and record["gap_sd"] == pytest.approx((1.5**2 + 1.0**2) ** 0.5)
    assert record["below_patches"] == pytest.approx(2.0) and record["met"] is True
    assert "goal (<= 10 tokens): met: mt-8 68.0±1.5 vs pool-k3 58.0±1.0 (gap +10.0" in goal_line(record)
    wide = [dict(r, composite={**r["composite"], "sd": 5.0}) if r["label"] == "mt-8" else r for r in rows]
    assert goal(wide)["met"] is False  # 10 points, but not above 2 sd of the gap
    assert goal(rows, near=1.0)["met"] is False  # 2 points below patches
    assert goal([r for r in rows if not r["masks"]])["met"] is None
    assert "not measurable" in goal_line(goal(rows[:1]))
    one = [dict(r, composite={**r["composite"], "sd": 0.0, "n": 1}) for r in rows]  # a single seed
    single = goal(one)
    assert single["met"] is None and single["gap"] == pytest.approx(10.0) and "--seeds 2" in single["why"]
    assert "not measurable yet (one seed" in goal_line(single) and "gap +10.0" in goal_line(single)


def test_frontier_fast_reduced_sweep_resumes(tmp_path, monkeypatch):
    sweep = [Entry("masktoken-8", "masktoken", "masktoken(min_one_patch=true,max_tokens=8)", masks=True),
             Entry("later", "later", "notyetthere(k=2)")]  # one trained variant keeps the test short
    notices, steps = [], []
    out = tmp_path / "qs"
    outcome = run_frontier(out, fast=True, seeds=1, sweep=sweep, notify=notices.append,
                           on_step=lambda *args: steps.append(args))
    assert steps and len(notices) == 1 and "skipped 1 of 2" in notices[0]
    record = json.loads((out / "frontier" / "frontier.json").read_text())
    [row] = record["variants"]
    assert row["label"] == "masktoken-8" and row["masks"] == "oracle" and "max_tokens=8" in row["spec"]
    assert 0 < row["visual_tokens"] <= 8  # the budget: visual tokens per image
    assert 0 <= row["composite"]["mean"] <= 100 and row["pareto"] and record["fronts"]["composite"] == ["masktoken-8"]
    assert record["meta"]["skipped"][0]["label"] == "later"
    assert record["goal"]["met"] is None  # no maskless variant in this sweep
    assert 0 < record["meta"]["chance"]["composite"] < 100
    assert record["meta"]["encoder"]["path"] == str(out / "encoder")  # the quickstart's pretrained encoder
    assert (out / "frontier" / "frontier.png").stat().st_size > 0
    assert outcome["paths"]["chart"] == out / "frontier" / "frontier.png"

    # resume through the CLI: the finished runs are read back, nothing trains again
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("frontier/runs/*/seed0/result.json")}
    assert len(mtimes) == 1
    monkeypatch.setattr(frontier, "SWEEP", tuple(sweep))
    again = CliRunner().invoke(app, ["quickstart", "--frontier", "--fast", "--seeds", "1", "--out", str(out)],
                               terminal_width=200)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("frontier/runs/*/seed0/result.json")} == mtimes
    text = " ".join(again.output.split())
    assert "skipped 1 of 2" in text and "masktoken-8" in text and "frontier.png" in text and "goal (<= 10" in text
    assert "encoder: contrastive pretraining" in text
    assert "seed 0: stage" not in text  # no progress of any training phase

    # a budget no image reaches is its unbounded twin (run once); one some image exceeds is not
    data = prepare_data(out, SIZES["fast"])
    runnable, _ = frontier_variants([Entry(f"mt-{n}", "masktoken", f"masktoken(min_one_patch=true,max_tokens={n})",
                                           masks=True) for n in (8, 64)] + [SWEEP_BY_LABEL["masktoken-all"]], BASE)
    variants = [v for _, v in runnable]
    most = most_tokens(variants[2], data)
    assert 8 < most < 64 and most_tokens(variants[1], data) == most and most_tokens(variants[0], data) == 8
    assert unreached_budgets(variants, data) == {"mt-64": ("masktoken-all", most)}
