"""Timed greedy generation, the same prompts for every variant."""
from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def time_generation(model, tokenizer, prompts: list[str], new_tokens: int, repetitions: int,
                    force_length: bool = True) -> dict:
    """One warm-up per prompt, then `repetitions` timed greedy runs per prompt.

    force_length sets min_new_tokens = new_tokens, so no run stops early at an end-of-sequence token. The
    tokens of each run are counted from its output ids (not taken from the setting); tokens/s is the median
    over runs of generated tokens / time, and the time is the median run time."""
    model.eval()
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    if force_length:
        kwargs["min_new_tokens"] = new_tokens
    cuda = model.device.type == "cuda"
    times, generated, run_prompts = [], [], []
    for position, prompt in enumerate(prompts, start=1):
        enc = tokenizer(prompt, return_tensors="pt").to(model.device)
        model.generate(**enc, **kwargs)  # warm-up
        for _ in range(repetitions):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(**enc, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            generated.append(int(out.shape[1] - enc["input_ids"].shape[1]))
            run_prompts.append(position)
    rates = [n / t for n, t in zip(generated, times)]
    return {"median_s": statistics.median(times), "tokens_per_s": statistics.median(rates),
            "min_s": min(times), "max_s": max(times), "p10_s": _quantile(times, 0.1), "p90_s": _quantile(times, 0.9),
            "runs": len(times), "prompts": len(prompts), "generated_tokens_per_run": generated,
            "tokens_generated_total": sum(generated), "run_times_s": times, "run_prompts": run_prompts}


def paper_protocol(result: dict, positions: list[int], new_tokens: int) -> dict:
    """The paper's Table 11 from the same runs: the mean run time on each of the variant's prompts (the positions the
    paper used for it), averaged over those prompts; tokens/s = new_tokens / that prompt's mean time, averaged too
    (the notebook's 10.62 tokens/s for QLoRA is the mean over its three prompts)."""
    means = []
    for position in positions:
        runs = [t for t, p in zip(result["run_times_s"], result["run_prompts"]) if p == position]
        if not runs:
            raise ValueError(f"evaluation.paper_prompts names prompt {position}, which was not timed "
                             f"({result['prompts']} prompts)")
        means.append(statistics.fmean(runs))
    return {"mean_s": statistics.fmean(means), "tokens_per_s": statistics.fmean(new_tokens / m for m in means),
            "prompt_means_s": means, "prompts": positions}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
