"""Perplexity two ways: the paper's protocol, and token-level perplexity of the whole test split."""
from __future__ import annotations

import bisect
import itertools
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


def line_break_ids(tokenizer) -> frozenset[int]:
    """Ids of the tokens whose text is whitespace holding a line break ("\\n", " \\n", "\\n\\n", "<0x0A>", ...):
    the rows' own trailing newline and the separators that join rows, which neither perplexity scores."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, text in enumerate(texts) if "\n" in text and not text.strip())


def _score_windows(model, windows: list[tuple[torch.Tensor, torch.Tensor]], batch_size: int) -> list[tuple[float, int]]:
    """(sum NLL, scored targets) of each (ids, targets) window, targets -100 where not scored; up to batch_size
    windows per forward pass, right-padded with an attention mask (a causal model's earlier positions are unchanged)."""
    out = []
    for start in range(0, len(windows), batch_size):
        group = windows[start:start + batch_size]
        width = max(len(ids) for ids, _ in group)
        ids = torch.zeros(len(group), width, dtype=torch.long)
        targets = torch.full((len(group), width), -100, dtype=torch.long)
        mask = torch.zeros(len(group), width, dtype=torch.long)
        for row, (window_ids, window_targets) in enumerate(group):
            ids[row, :len(window_ids)], targets[row, :len(window_ids)] = window_ids, window_targets
            mask[row, :len(window_ids)] = 1
        # logits only from the first position that predicts a scored target on (context positions need none)
        scored_at = (targets[:, 1:] != -100).nonzero()[:, 1]  # position 0 is never a target
        keep = width - int(scored_at.min()) if len(scored_at) else 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       logits_to_keep=keep).logits[:, :-1].float()
        shifted = targets[:, width - keep + 1:].to(logits.device)  # the model predicts position t from positions < t
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), shifted, ignore_index=-100, reduction="none")
        out += list(zip(nll.sum(dim=1).tolist(), (shifted != -100).sum(dim=1).tolist()))
    return out


def _windows_of(ids: torch.Tensor, max_length: int, stride: int, masked: frozenset[int]):
    """Each sliding window of ids as (ids, targets): its first positions are context already scored by an earlier
    window, and masked ids are never targets."""
    masked_tensor = torch.tensor(sorted(masked), dtype=torch.long)
    for begin, end, target_len in sliding_windows(len(ids), max_length, stride):
        window = ids[begin:end]
        targets = window.clone()
        targets[: max(0, (end - begin) - target_len)] = -100
        targets[torch.isin(window, masked_tensor)] = -100
        yield begin, end, window, targets


@torch.no_grad()
def token_level(model, tokenizer, texts: list[str], max_length: int, stride: int, batch_size: int = 1,
                masked_ids: frozenset[int] = frozenset(), row_articles: list[int] | None = None) -> dict:
    """transformers' "perplexity of fixed-length models": the split joined with "\\n\\n", a sliding window of
    max_length moved by stride; tokens already scored are context; exp(sum NLL / scored tokens). Targets in
    masked_ids (line_break_ids: the rows' newlines and the joins, which training never scores as such) are left out.

    row_articles (each text's article): each window is credited to the article of its first scored target, for a
    bootstrap that resamples articles. The result does not depend on batch_size (tests/test_measurements.py)."""
    joined = "\n\n".join(texts)
    enc = tokenizer(joined, return_tensors="pt", **({"return_offsets_mapping": True} if row_articles else {}))
    ids = enc.input_ids[0]
    windows = list(_windows_of(ids, max_length, stride, masked_ids))
    scored = _score_windows(model, [(w, t) for _, _, w, t in windows], batch_size)
    window_nll, window_tokens = [nll for nll, _ in scored], [n for _, n in scored]
    result = {"perplexity": math.exp(math.fsum(window_nll) / sum(window_tokens)), "scored_tokens": sum(window_tokens),
              "total_tokens": len(ids), "masked_targets": int(torch.isin(ids[1:], torch.tensor(sorted(masked_ids), dtype=torch.long)).sum()),
              "nll_sum": math.fsum(window_nll), "windows": len(windows), "batch_size": batch_size,
              "window_nll": window_nll, "window_tokens": window_tokens}
    if row_articles:
        row_starts = list(itertools.accumulate([0] + [len(t) + 2 for t in texts[:-1]]))
        offsets = enc["offset_mapping"][0][:, 0].tolist()
        firsts = [begin + int((t != -100).nonzero()[0]) if (t != -100).any() else begin
                  for begin, _, _, t in windows]
        result["window_article"] = [row_articles[bisect.bisect_right(row_starts, offsets[i]) - 1] for i in firsts]
    return result


@torch.no_grad()
def per_row(model, tokenizer, texts: list[str], max_length: int, stride: int, batch_size: int = 1,
            masked_ids: frozenset[int] = frozenset()) -> dict:
    """Each non-empty row scored alone, tokenized as training tokenizes it; a row longer than max_length is scored in
    sliding windows (max_length, stride) within itself. Targets in masked_ids are left out. exp(sum NLL / scored)."""
    rows = [i for i, text in enumerate(texts) if text.strip()]
    windows, owner = [], []
    for i in rows:
        ids = torch.as_tensor(tokenizer(texts[i])["input_ids"]).reshape(-1)
        for _, _, window, targets in _windows_of(ids, max_length, stride, masked_ids):
            windows.append((window, targets))
            owner.append(i)
    row_nll, row_tokens = dict.fromkeys(rows, 0.0), dict.fromkeys(rows, 0)
    by_length = sorted(range(len(windows)), key=lambda k: len(windows[k][0]))  # batches of like lengths pad little
    scores = _score_windows(model, [windows[k] for k in by_length], batch_size)
    for k, (nll, n) in zip(by_length, scores):
        row_nll[owner[k]] += nll
        row_tokens[owner[k]] += n
    nll_sum, scored = math.fsum(row_nll.values()), sum(row_tokens.values())
    return {"perplexity": math.exp(nll_sum / scored), "scored_tokens": scored, "rows": len(rows),
            "windows": len(windows), "nll_sum": nll_sum, "row_index": rows,
            "row_nll": [row_nll[i] for i in rows], "row_tokens": [row_tokens[i] for i in rows]}
