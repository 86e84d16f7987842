"""Timed greedy generation, the same prompts for every variant, all variants timed in one job in interleaved rounds."""
from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone

import torch


def rotated_orders(names: list[str], rounds: int) -> list[list[str]]:
    """The order the models run in each round: the names rotated left by one more each round
    (full, qlora, merged; qlora, merged, full; merged, full, qlora; full, ...), so each model runs first, in the
    middle and last equally often (over a multiple of len(names) rounds) and slow drift falls on all of them."""
    if rounds < 1 or not names:
        raise ValueError(f"timing needs at least one round and one model, got {rounds} round(s), models {names}")
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]


@torch.no_grad()
def time_rounds(models: dict, tokenizer, prompts: list[str], new_tokens: int, rounds: int,
                force_length: bool = True) -> dict[str, dict]:
    """Times every model on every prompt in `rounds` interleaved rounds: one warm-up run per model and prompt first,
    then in round r each model (in rotated_orders' order for r) runs each prompt once. So a model's runs of one
    round are next to the other models' runs of that round, and a comparison can pair them round by round.

    force_length sets min_new_tokens = new_tokens, so no run stops early at an end-of-sequence token. The tokens of
    each run are counted from its output ids (not taken from the setting). Per model: the median run time, the
    median over runs of generated tokens / time, and every run's time, prompt (1-based position), round and place
    in its round's order."""
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    if force_length:
        kwargs["min_new_tokens"] = new_tokens
    orders = rotated_orders(list(models), rounds)
    encoded = {name: [tokenizer(p, return_tensors="pt").to(model.device) for p in prompts]
               for name, model in models.items()}
    runs = {name: {"run_times_s": [], "generated_tokens_per_run": [], "run_prompts": [], "run_rounds": [],
                   "run_places": []} for name in models}
    for name in orders[0]:
        models[name].eval()
        for enc in encoded[name]:
            models[name].generate(**enc, **kwargs)  # warm-up
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for round_index, order in enumerate(orders, start=1):
        for place, name in enumerate(order, start=1):
            for position, enc in enumerate(encoded[name], start=1):
                seconds, generated = _timed_generate(models[name], enc, kwargs)
                record = runs[name]
                record["run_times_s"].append(seconds)
                record["generated_tokens_per_run"].append(generated)
                record["run_prompts"].append(position)
                record["run_rounds"].append(round_index)
                record["run_places"].append(place)
    session = {"started": started, "models": list(models), "rounds": rounds, "round_orders": orders}
    return {name: {**summary(record, len(prompts)), "timed_together": session} for name, record in runs.items()}


def _timed_generate(model, enc, kwargs) -> tuple[float, int]:
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(**enc, **kwargs)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, int(out.shape[1] - enc["input_ids"].shape[1])


def summary(record: dict, prompts: int) -> dict:
    """One model's timed runs with their median time, median tokens/s and spread."""
    times = record["run_times_s"]
    rates = [n / t for n, t in zip(record["generated_tokens_per_run"], times)]
    return {"median_s": statistics.median(times), "tokens_per_s": statistics.median(rates),
            "min_s": min(times), "max_s": max(times), "p10_s": _quantile(times, 0.1), "p90_s": _quantile(times, 0.9),
            "runs": len(times), "prompts": prompts, "tokens_generated_total": sum(record["generated_tokens_per_run"]),
            "run_tokens_per_s": rates, **record}


def time_generation(model, tokenizer, prompts: list[str], new_tokens: int, repetitions: int,
                    force_length: bool = True) -> dict:
    """One model alone: time_rounds with `repetitions` rounds."""
    return time_rounds({"model": model}, tokenizer, prompts, new_tokens, repetitions, force_length)["model"]


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
