"""The check's one table (rich) and `gpu_check.json` (every number, the parts' time accounts).

Goals (issue 15, on an H100/H200-class GPU): masktoken step <= 1.10x patches at equal visual
tokens, peak memory of a 3B LoRA step at batch 4 under 40 GB, ZeRO-3 (and ZeRO-2) first loss
equal to the plain run's, SAM2.1-large AMG >= 5 images/s (the data-path issue; real weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RATIO_GOAL = 1.10
MEMORY_GOAL_GB = 40.0
SAM2_GOAL = 5.0


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _status(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISSED")


def _limit(section: dict[str, Any], done: str) -> str:
    part = section.get("part", {})
    return f"limit reached ({done})" if part.get("reached") else ""


def train_rows(section: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    memory_goal = meta["llm"] == "3b" and meta["batch"] == 4
    for fusion, r in section.get("runs", {}).items():
        result = (f"{_num(r.get('step_ms_median'))} ms/step ({r.get('steps', 0)} steps), "
                  f"{_num(r.get('visual_tokens_per_s'), ',.0f')} visual tok/s, "
                  f"peak {_num(r.get('peak_memory_gb'))} GB, "
                  f"{r.get('visual_tokens_per_image')} visual + {min(r.get('text_tokens') or [0])}-"
                  f"{max(r.get('text_tokens') or [0])} text tokens, {r.get('masks_per_image')} masks")
        peak = r.get("peak_memory_gb")
        ok = (peak < MEMORY_GOAL_GB) if memory_goal and peak is not None else None
        rows.append(("train", fusion, result, f"peak < {MEMORY_GOAL_GB:.0f} GB" if memory_goal else "",
                     _limit(section, f"{r.get('steps', 0)} steps") or _status(ok)))
    ratio = section.get("ratio_masktoken_patches")
    if ratio is not None:
        equal = section.get("equal_visual_tokens")
        rows.append(("train", "masktoken / patches", f"{ratio:.3f}x" + ("" if equal else " (visual tokens differ)"),
                     f"<= {RATIO_GOAL:.2f}x", _status(ratio <= RATIO_GOAL if equal else None)))
    return rows


def infer_rows(section: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for fusion, r in section.get("runs", {}).items():
        for attention in ("sdpa", "eager"):
            if attention in r:
                a = r[attention]
                rows.append(("infer", f"{fusion} {attention}",
                             f"prefill {_num(a['prefill_ms'])} ms, prefill + {r['new_tokens']} tokens "
                             f"{_num(a['latency_ms'])} ms, {_num(a['decode_tokens_per_s'], ',.0f')} decode tok/s "
                             f"(batch {r['batch']}, prompt {r['prompt_length']})", "", _limit(section, attention)))
        if "same_answers" in r:
            same = r["same_answers"]
            rows.append(("infer", f"{fusion} sdpa = eager", "same answers" if same else
                         f"{r['agreeing_tokens']:.0%} of tokens agree; {r['differ_reason']}",
                         "same answers or a near-tie", "near-tie" if r.get("near_tie") else _status(same)))
    return rows


def zero_rows(section: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    equal = section.get("first_loss_equal", {})
    for name, r in section.get("runs", {}).items():
        losses = ", ".join(f"{x:.5f}" for x in r["losses"])
        extra = f", first loss rel. diff {r['first_loss_rel_diff']:.1e}" if "first_loss_rel_diff" in r else ""
        rows.append(("zero", name, f"losses {losses}; {r['seconds']:.0f} s, peak {_num(r['peak_memory_gb'])} GB"
                     + extra, "first loss = plain" if name != "plain" else "",
                     _limit(section, name) or _status(equal.get(name))))
    return rows


def sam2_rows(section: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    random = section.get("weights") == "random"
    for label, r in section.get("settings", {}).items():
        rate = r.get("images_per_s")
        result = (f"{_num(rate, '.2f')} images/s, {_num(r.get('masks_per_image'))} masks/image "
                  f"({r['images']} photos)" + (" RANDOM weights" if random else ""))
        ok = None if random or rate is None else rate >= SAM2_GOAL
        rows.append(("sam2", f"{section.get('variant')} {label}", result, f">= {SAM2_GOAL:.0f} images/s",
                     _limit(section, label) or ("random weights" if random else _status(ok))))
    return rows


def rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    out = [*train_rows(results.get("train", {}), results["meta"]), *infer_rows(results.get("infer", {})),
           *zero_rows(results.get("zero", {})), *sam2_rows(results.get("sam2", {}))]
    for name in ("train", "infer", "zero", "sam2"):
        section = results.get(name, {})
        if "error" in section:
            out.append((name, "error", section["error"], "", "error"))
        elif section.get("part", {}).get("interrupted"):
            out.append((name, "interrupted", "stopped at the hard limit inside a unit of work", "", "limit"))
    return out


def print_table(results: dict[str, Any], console: Console | None = None) -> None:
    meta = results["meta"]
    table = Table(title=f"og GPU check: {meta['device_name']}, {meta['dtype']}, {meta['spec']}, batch {meta['batch']},"
                        f" LoRA r {meta['lora_r']}, {meta['date']}", title_justify="left", show_lines=False)
    for col in ("part", "what", "result", "goal", "status"):
        table.add_column(col, overflow="fold")
    for row in rows(results):
        table.add_row(*row)
    (console or Console(width=200)).print(table)


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu_check.json"
    path.write_text(json.dumps(results, indent=1))  # a NaN stays NaN: visible, not hidden
    return path
