"""bench/gpu_check.py: the equal-token masks at the published grid, and the whole script with
`--tiny` on the CPU (every part, the table and gpu_check.json, ZeRO-2/3 losses equal to plain).

The script test is a subprocess (DeepSpeed, a process group and SIGALRM time limits are
process-wide); marked `slow` like the other multi-process training tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"
sys.path.insert(0, str(ROOT / "bench"))

from gpu_check_parts.budget import Part  # noqa: E402
from gpu_check_parts.infer_part import explain, first_difference  # noqa: E402
from gpu_check_parts.workload import equal_token_masks  # noqa: E402

from og.fusion import downsample, plan_layout  # noqa: E402
from og.spec import FusionSpec  # noqa: E402


@pytest.mark.parametrize(("image_size", "grid", "n_masks"), [((336, 336), (24, 24), 40), ((64, 64), (8, 8), 40),
                                                              ((224, 224), (16, 16), 40)])
def test_masks_give_masktoken_the_patch_count(image_size, grid, n_masks):
    masks = equal_token_masks(image_size, grid, n_masks)
    assert len(masks) == min(n_masks, (grid[0] * grid[1] - 1) // 2)
    assert masks.data.any(axis=(1, 2)).all() and masks.data.sum(0).max() == 1  # non-empty, disjoint
    coverage = downsample(torch.as_tensor(masks.data), grid)  # (M, h, w)
    assert set(coverage.unique().tolist()) == {0.0, 1.0}  # whole patch cells
    tokens = {name: len(plan_layout(FusionSpec(name), coverage, grid, torch.as_tensor(masks.scores)))
              for name in ("patches", "masktoken")}
    assert tokens["masktoken"] == tokens["patches"] == grid[0] * grid[1]


def test_part_soft_limit_stops_between_units_and_hard_limit_interrupts():
    soft = Part("soft", 0.05, hard_factor=None)
    done = 0
    with soft:
        while not soft.out_of_time():
            time.sleep(0.01)
            done += 1
    assert soft.reached and not soft.interrupted and done >= 1
    hard = Part("hard", 0.05, hard_factor=2.0)  # interrupted at 0.1 s, inside a unit that would take 5 s
    start = time.perf_counter()
    with hard:
        time.sleep(5)
    assert hard.reached and hard.interrupted and time.perf_counter() - start < 2
    assert hard.summary()["interrupted"] is True


def test_sdpa_eager_difference_is_located_and_explained():
    a = torch.tensor([[5, 6, 7], [1, 2, 3]])
    assert first_difference(a, a.clone()) is None
    b = a.clone()
    b[1, 2], b[0, 2] = 9, 9
    assert first_difference(a, b) == (0, 2)
    scores = [torch.zeros(2, 4) for _ in range(3)]
    scores[2][0, :2] = torch.tensor([1.0, 0.999])  # a near-tie where they differ
    logits = torch.zeros(2, 4)
    runs = {"sdpa": {"scores": scores, "prefill_logits": logits}, "eager": {"prefill_logits": logits + 0.01}}
    text, near_tie = explain(runs, (0, 2))
    assert near_tie and "generated token 2" in text
    scores[2][0, :2] = torch.tensor([1.0, 0.0])  # a clear winner: not rounding
    assert explain(runs, (0, 2))[1] is False


def numbers(obj, path=""):
    """Every number in a JSON value, with its path."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


@pytest.mark.slow
def test_tiny_run_reports_every_part(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--fusions", "patches,masktoken", "--out",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout
    for row in ("og GPU check", "masktoken / patches", "sdpa = eager", "zero3", "2.1-tiny og masks build"):
        assert row in table
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    for part in ("train", "infer", "zero", "sam2"):
        assert "error" not in results[part], results[part]
        assert not results[part]["part"]["reached"], results[part]["part"]
    bad = [(p, x) for p, x in numbers(results) if not math.isfinite(x)]
    assert not bad
    train = results["train"]
    for fusion in ("patches", "masktoken"):
        assert train["runs"][fusion]["steps"] == 2 and train["runs"][fusion]["step_ms_median"] > 0
    assert train["equal_visual_tokens"] and train["runs"]["masktoken"]["visual_tokens_per_image"] == 64
    assert train["ratio_masktoken_patches"] > 0
    for fusion in ("patches", "masktoken"):
        run = results["infer"]["runs"][fusion]
        assert run["sdpa"]["latency_ms"] > 0 and run["eager"]["latency_ms"] > 0
        assert run["same_answers"] is True  # float32 on the CPU: sdpa and eager agree
    zero = results["zero"]
    assert set(zero["runs"]) == {"plain", "zero2", "zero3"}
    assert [zero["runs"][n]["zero_stage"] for n in ("plain", "zero2", "zero3")] == [None, 2, 3]
    assert zero["first_loss_equal"] == {"zero2": True, "zero3": True}
    for name in ("zero2", "zero3"):
        assert zero["runs"][name]["losses"] == pytest.approx(zero["runs"]["plain"]["losses"], rel=1e-5)
    sam2 = results["sam2"]
    assert sam2["weights"] == "random" and sam2["variant"] == "2.1-tiny"
    assert all(s["images"] == 3 and s["images_per_s"] > 0 for s in sam2["settings"].values())
