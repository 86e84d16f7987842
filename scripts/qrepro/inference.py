"""Timed greedy generation, the same prompts for every variant."""
from __future__ import annotations

import statistics
import time

import torch

PAPER_PROMPTS = ["The history of artificial intelligence", "The future of artificial intelligence is",
                 "In the field of machine learning,", "Climate change has become"]


@torch.no_grad()
def time_generation(model, tokenizer, prompts: list[str], new_tokens: int, repetitions: int) -> dict:
    """One warm-up per prompt, then `repetitions` timed runs per prompt; min_new_tokens = new_tokens
    so every run really generates that many tokens."""
    model.eval()
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  pad_token_id=tokenizer.eos_token_id)
    times, generated = [], []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt").to(model.device)
        model.generate(**enc, **kwargs)  # warm-up
        for _ in range(repetitions):
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(**enc, **kwargs)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            generated.append(out.shape[1] - enc["input_ids"].shape[1])
    median = statistics.median(times)
    return {"median_s": median, "tokens_per_s": new_tokens / median, "min_s": min(times), "max_s": max(times),
            "stdev_s": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": len(times),
            "generated_tokens": sorted(set(generated))}
