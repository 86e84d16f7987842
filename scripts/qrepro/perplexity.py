"""Perplexity two ways: the paper's protocol, and token-level perplexity of the whole test split."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def paper_protocol(model, tokenizer, texts: list[str], max_length: int, n_samples: int = 100) -> dict:
    """The paper's Table 10: the first n non-empty test rows, each padded to max_length, with
    labels = input_ids (so padding eos tokens count in the loss), exp(mean of per-sample losses)."""
    rows = [t for t in texts if t.strip()][:n_samples]
    losses = []
    for text in rows:
        enc = tokenizer(text, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
        enc = {k: v.to(model.device) for k, v in enc.items()}
        losses.append(model(**enc, labels=enc["input_ids"]).loss.float().item())
    return {"perplexity": math.exp(sum(losses) / len(losses)), "samples": len(rows),
            "mean_loss": sum(losses) / len(losses)}


@torch.no_grad()
def token_level(model, tokenizer, texts: list[str], max_length: int, stride: int) -> dict:
    """transformers' "perplexity of fixed-length models": the split joined with "\\n\\n", a sliding
    window of max_length moved by stride; tokens already scored are context (label -100);
    exp(sum NLL / scored tokens)."""
    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids.to(model.device)
    length = ids.size(1)
    nll_sum, scored, prev_end = 0.0, 0, 0
    for begin in range(0, length, stride):
        end = min(begin + max_length, length)
        target_len = end - prev_end
        window = ids[:, begin:end]
        labels = window.clone()
        labels[:, :-target_len] = -100
        # the model shifts labels by one, so a window scores (number of non -100 labels) - 1 at its start
        n_scored = int((labels[:, 1:] != -100).sum())
        if n_scored:
            loss = model(input_ids=window, labels=labels).loss.float().item()
            nll_sum += loss * n_scored
            scored += n_scored
        prev_end = end
        if end == length:
            break
    return {"perplexity": math.exp(nll_sum / scored), "scored_tokens": scored, "total_tokens": length,
            "nll_sum": nll_sum}
