"""Perplexity two ways: the paper's protocol, and token-level perplexity of the whole test split."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def paper_protocol(model, tokenizer, texts: list[str], max_length: int, n_samples: int = 100) -> dict:
    """The paper's Table 10: the first n non-empty test rows, each padded to max_length, with
    labels = input_ids (so padding eos tokens count in the loss), exp(mean of per-sample losses).

    Each row's loss averages over its max_length - 1 predicted positions; those whose target is padding (attention
    mask 0) are counted, so padding_percent says how much of what is scored is padding."""
    rows = [t for t in texts if t.strip()][:n_samples]
    losses, scored, padding = [], 0, 0
    for text in rows:
        enc = tokenizer(text, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
        enc = {k: v.to(model.device) for k, v in enc.items()}
        losses.append(model(**enc, labels=enc["input_ids"]).loss.float().item())
        targets = enc["attention_mask"][0, 1:]  # the model predicts position t from positions < t
        scored += targets.numel()
        padding += int((targets == 0).sum())
    return {"perplexity": math.exp(sum(losses) / len(losses)), "samples": len(rows),
            "mean_loss": sum(losses) / len(losses), "scored_tokens": scored, "padding_tokens": padding,
            "padding_percent": 100 * padding / scored, "row_losses": losses}


def sliding_windows(length: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) of each window: transformers' "perplexity of fixed-length models" schedule; the last
    `scored` positions of a window are scored, the rest are context already scored by an earlier window."""
    windows, prev_end = [], 0
    for begin in range(0, length, stride):
        end = min(begin + max_length, length)
        windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == length:
            break
    return windows


@torch.no_grad()
def token_level(model, tokenizer, texts: list[str], max_length: int, stride: int, batch_size: int = 1) -> dict:
    """transformers' "perplexity of fixed-length models": the split joined with "\\n\\n", a sliding window of
    max_length moved by stride; tokens already scored are context; exp(sum NLL / scored tokens).

    Windows of equal length are run `batch_size` at a time; each token's NLL is summed exactly once, so the
    result does not depend on the batch size (tests/test_measurements.py)."""
    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids[0]
    windows = sliding_windows(len(ids), max_length, stride)
    window_nll, window_tokens = [], []
    groups: list[list[tuple[int, int, int]]] = []
    for window in windows:  # consecutive windows of the same length share a batch
        last = groups[-1] if groups else None
        if last and len(last) < batch_size and last[0][1] - last[0][0] == window[1] - window[0]:
            last.append(window)
        else:
            groups.append([window])
    for group in groups:
        batch = torch.stack([ids[begin:end] for begin, end, _ in group]).to(model.device)
        logits = model(input_ids=batch).logits[:, :-1].float()
        targets = batch[:, 1:].clone()
        for row, (begin, end, target_len) in enumerate(group):
            # the model predicts position t from positions < t: the window's first token is never scored
            targets[row, : max(0, (end - begin) - target_len - 1)] = -100
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        window_nll += nll.sum(dim=1).tolist()  # per window: what the bootstrap resamples
        window_tokens += (targets != -100).sum(dim=1).tolist()
    nll_sum, scored = math.fsum(window_nll), sum(window_tokens)
    return {"perplexity": math.exp(nll_sum / scored), "scored_tokens": scored, "total_tokens": len(ids),
            "nll_sum": nll_sum, "windows": len(windows), "batch_size": batch_size,
            "window_nll": window_nll, "window_tokens": window_tokens}
