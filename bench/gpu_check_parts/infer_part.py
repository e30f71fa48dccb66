"""Part "infer": prefill + N generated tokens with the KV cache (greedy, N forced with
min_new_tokens), for sdpa and eager attention on the same model. Reports the prefill and total
latency (medians), decode tokens/s, and whether both attentions give the same answers; when they
do not, the reason: where the first answer differs and how close the top two logits were there
against the largest sdpa/eager logit difference of the prefill (a near-tie flipped by rounding)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from .budget import Part
from .shapes import Setup, sync
from .workload import Workload

ATTENTIONS = ("sdpa", "eager")


def timed_generate(model: Any, batch: dict[str, Any], new_tokens: int, device: torch.device) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         output_scores=True, return_dict_in_generate=True)
    sync(device)
    return time.perf_counter() - start, out


def first_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int] | None:
    """(sample, position) of the first differing generated token, or None."""
    diff = (a != b).nonzero()  # (K, 2)
    if len(diff) == 0:
        return None
    sample = int(diff[0, 0])
    return sample, int(diff[diff[:, 0] == sample][:, 1].min())


def explain(runs: dict[str, dict[str, Any]], at: tuple[int, int]) -> tuple[str, bool]:
    """Why the answers differ, and whether it is a near-tie: the top-2 logit gap at the first
    difference is within twice the largest sdpa/eager logit difference of the prefill."""
    sample, pos = at
    top2 = runs["sdpa"]["scores"][pos][sample].float().topk(2).values
    gap = float(top2[0] - top2[1])
    prefill_diff = float((runs["sdpa"]["prefill_logits"] - runs["eager"]["prefill_logits"]).abs().max())
    near_tie = gap <= 2 * prefill_diff
    return (f"sample {sample} differs from generated token {pos}: the sdpa top-2 logit gap there is {gap:.3g}, "
            f"against a largest sdpa/eager logit difference of {prefill_diff:.3g} at the prefill"
            + (" (a near-tie that rounding flips)" if near_tie else " (more than rounding: look into it)"), near_tie)


def run(model: Any, processor: Any, setup: Setup, work: Workload, part: Part, new_tokens: int, repeats: int,
        record: dict[str, Any]) -> None:
    device, base = setup.device, model.get_base_model() if hasattr(model, "get_base_model") else model
    model.eval()
    batch = work.prompt_batch(processor, device)
    prompt_len = batch["input_ids"].shape[1]
    record.update(batch=len(work.images), prompt_length=int(prompt_len), new_tokens=new_tokens)
    runs: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        for attention in ATTENTIONS:
            if part.out_of_time():
                break
            base.set_attn_implementation(attention)
            if device.type == "cuda":
                timed_generate(model, batch, 2, device)  # warm-up: kernels, allocator
            prefill = [timed_generate(model, batch, 1, device)[0] for _ in range(repeats)]
            totals, out = [], None
            for _ in range(repeats):
                seconds, out = timed_generate(model, batch, new_tokens, device)
                totals.append(seconds)
            total, first = statistics.median(totals), statistics.median(prefill)
            logits = model(**batch).logits[:, -1].float()  # (B, V)
            runs[attention] = {"tokens": out.sequences[:, prompt_len:], "scores": out.scores,
                               "prefill_logits": logits}
            record[attention] = {"prefill_ms": first * 1e3, "latency_ms": total * 1e3,
                                 "tokens_per_s": len(work.images) * new_tokens / total,
                                 "decode_tokens_per_s": len(work.images) * (new_tokens - 1) / max(total - first, 1e-9)}
        base.set_attn_implementation(ATTENTIONS[0])
    if len(runs) == len(ATTENTIONS):
        at = first_difference(runs["sdpa"]["tokens"], runs["eager"]["tokens"])
        record["same_answers"] = at is None
        record["agreeing_tokens"] = float((runs["sdpa"]["tokens"] == runs["eager"]["tokens"]).float().mean())
        record["differ_reason"], record["near_tie"] = (None, None) if at is None else explain(runs, at)
