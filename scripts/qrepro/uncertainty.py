"""Test-set uncertainty: a percentile bootstrap over the units a perplexity sums (test rows for the paper's
protocol, sliding windows for token-level perplexity), paired across models; and the spread over training seeds
(seed_summary, t_interval); and the median of timed samples (median_bootstrap): iid, in blocks, within strata,
or by whole rounds of a job that timed several models, paired round by round (paired_median_interval). Shared layer:
numpy (scipy for the t quantile), no torch.

Paired: every model's replicates use the same resampled units (the same indices, from the same seed and unit
count), so a comparison of two perplexities is computed replicate by replicate and its interval reflects only what
differs between the models, not which test rows happened to be drawn."""
from __future__ import annotations

import numpy as np


def resample_indices(units: int, replicates: int, seed: int) -> np.ndarray:
    """replicates x units indices drawn with replacement: row i is bootstrap sample i."""
    if units < 2:
        raise ValueError(f"a bootstrap needs at least 2 units, got {units}")
    return np.random.default_rng(seed).integers(0, units, size=(replicates, units))


def perplexity_replicates(nll: list[float], tokens: list[float], indices: np.ndarray) -> np.ndarray:
    """exp(sum NLL / sum tokens) of each bootstrap sample: token-level perplexity when nll and tokens are per
    window; the paper's exp(mean row loss) when nll is each row's mean loss and tokens are all 1."""
    nll_array, token_array = np.asarray(nll, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
    if nll_array.shape != token_array.shape or nll_array.ndim != 1:
        raise ValueError("nll and tokens must be one value per unit")
    if indices.size and indices.max() >= len(nll_array):
        raise ValueError(f"indices reach unit {indices.max()}, but there are {len(nll_array)} units")
    return np.exp(nll_array[indices].sum(axis=1) / token_array[indices].sum(axis=1))


def sum_by_cluster(nll: list[float], tokens: list[float], owners: list) -> dict:
    """Per-unit NLL and token sums added up per cluster (owners: each unit's cluster), in order of first appearance:
    the units of a bootstrap that resamples whole clusters (articles)."""
    nll_sum, token_sum = {}, {}
    for value, count, owner in zip(nll, tokens, owners, strict=True):
        nll_sum[owner] = nll_sum.get(owner, 0.0) + value
        token_sum[owner] = token_sum.get(owner, 0) + count
    return {"nll": list(nll_sum.values()), "tokens": list(token_sum.values())}


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` share of the replicates (percentile method)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def method_text(unit: str, units: int, replicates: int, seed: int, paired: bool, scored: str = "of the test split") -> str:
    """How an interval was computed, for its metric file; scored: which units those are, in words."""
    text = f"percentile bootstrap over the {units} {unit}s {scored}, {replicates} resamples, seed {seed}"
    if paired:
        text += "; paired: both perplexities recomputed on the same resamples, the formula applied to each pair"
    return text


def interval(low: float, high: float, level: float, method: str) -> dict:
    """The `interval` field of a metric file."""
    return {"low": low, "high": high, "level": level, "method": method}


def block_length(samples: int) -> int:
    """Block length of the circular block bootstrap for a series of timed steps: n^(1/3), rounded, a common rule of
    thumb (8 for 490 steps); tests/test_uncertainty.py measures its coverage on correlated series."""
    return max(1, round(samples ** (1 / 3)))


def resample_positions(samples: int, replicates: int, rng: np.random.Generator, block: int = 1,
                       strata: list | None = None, groups: list | None = None) -> np.ndarray:
    """replicates x samples positions drawn with replacement. block > 1: a circular block bootstrap (consecutive
    runs of `block` positions from random starts, wrapping at the end), for series whose neighbours are correlated.
    strata (one label per sample): each label's positions resampled among themselves, so every replicate keeps
    each label's count (e.g. the timed runs of each prompt). groups (one label per sample, every group the same
    size, e.g. the round each timed run belongs to): whole groups drawn with replacement (the iid draws over the
    groups), each drawn group bringing all its samples, so what the samples of one group share (drift between
    rounds) varies between replicates; two series with the same group labels, resampled from generators seeded
    alike, draw the same groups (paired_median_interval)."""
    if samples < 2:
        raise ValueError(f"a bootstrap needs at least 2 samples, got {samples}")
    if groups is not None:
        members = group_members(groups, samples)
        return members[resample_positions(len(members), replicates, rng)].reshape(replicates, -1)
    if strata is not None:
        labels = np.asarray(strata)
        if len(labels) != samples:
            raise ValueError(f"{len(labels)} stratum labels for {samples} samples")
        positions = np.empty((replicates, samples), dtype=np.int64)
        for label in dict.fromkeys(strata):
            members = np.flatnonzero(labels == label)
            positions[:, members] = members[rng.integers(0, len(members), size=(replicates, len(members)))]
        return positions
    if block <= 1:
        return rng.integers(0, samples, size=(replicates, samples))
    starts = rng.integers(0, samples, size=(replicates, -(-samples // block)))
    return ((starts[:, :, None] + np.arange(block)) % samples).reshape(replicates, -1)[:, :samples]


def group_members(groups: list, samples: int) -> np.ndarray:
    """groups x size positions: row g holds the positions of the g-th group label in sorted order (round 1, 2, ...),
    so two series labelled by the same rounds line up row by row."""
    labels = np.asarray(groups)
    if len(labels) != samples:
        raise ValueError(f"{len(labels)} group labels for {samples} samples")
    members = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    if len({len(m) for m in members}) != 1:
        raise ValueError(f"groups of unequal size {sorted({len(m) for m in members})}: resampling whole groups "
                         "would change the sample count")
    if len(members) < 2:
        raise ValueError(f"a bootstrap over groups needs at least 2 groups, got {len(members)}")
    return np.stack(members)


def median_replicates(samples: list[float], replicates: int, rng: np.random.Generator, block: int = 1,
                      strata: list | None = None, groups: list | None = None) -> np.ndarray:
    """The median of each of `replicates` resamples of the samples (resample_positions: iid, blocks, strata or
    groups)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"a bootstrap of a median needs at least 2 samples, got {values.shape}")
    return np.median(values[resample_positions(len(values), replicates, rng, block, strata, groups)], axis=1)


def median_interval(samples: list[float], replicates: int, seed: int, level: float, block: int = 1,
                    strata: list | None = None, groups: list | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (resample_positions says how the samples are drawn)."""
    return percentile_interval(median_replicates(samples, replicates, np.random.default_rng(seed), block, strata,
                                                 groups), level)


def median_bootstrap(samples: list[float], unit: str, samples_field: str, settings: dict, described: str,
                     block: int = 1, strata: list | None = None, strata_field: str | None = None,
                     groups: list | None = None, groups_field: str | None = None,
                     pairing: str | None = None) -> tuple[dict, dict]:
    """A median's `interval` field and the details.bootstrap record that lets a comparison resample it again
    (derived.median_interval). settings: config evaluation.bootstrap; described: the samples in words, for the
    method ("timed optimizer steps"); block, strata (in details.<strata_field>) or groups (in
    details.<groups_field>: rounds of one job that timed several models, `pairing` naming that job so that only
    medians of the same job are paired): how they are resampled."""
    low, high = median_interval(samples, settings["replicates"], settings["seed"], settings["level"], block, strata,
                                groups)
    if groups is not None:
        how = round_text(len(samples), len(set(groups)), described)
        noise = ROUND_NOISE
    else:
        noise = ("within-run noise only: it does not hold what changes from one run, process or machine to "
                 "another")
        if block > 1:
            how = (f"circular block bootstrap over the {len(samples)} {described} in the order they ran, blocks of "
                   f"{block} consecutive ones (about n^(1/3): neighbours are correlated, and blocks keep that)")
        elif strata is not None:
            counts = {label: strata.count(label) for label in dict.fromkeys(strata)}
            how = (f"percentile bootstrap over the {len(samples)} {described}, resampled within each of the "
                   f"{len(counts)} {strata_field.removeprefix('run_').rstrip('s')}s (each keeps its "
                   f"{'/'.join(map(str, sorted(set(counts.values()))))} {unit}s)")
        else:
            how = f"percentile bootstrap over the {len(samples)} {described}, taken as independent"
    method = f"{how}, {settings['replicates']} resamples, seed {settings['seed']}; {noise}"
    record = {"statistic": "median", "samples": samples_field, "unit": unit, "replicates": settings["replicates"],
              "seed": settings["seed"], "level": settings["level"], "block": block, "strata": strata_field}
    if groups is not None:
        record.update(groups=groups_field, pairing=pairing)
    return interval(low, high, settings["level"], method), record


# what an interval over the rounds of one timing job holds, and what it does not
ROUND_NOISE = ("it holds the run-to-run noise and the drift between rounds within this one job (the rounds "
               "interleave the models, their order rotated each round); not what varies between jobs, builds or "
               "machines")


def round_text(samples: int, rounds: int, described: str) -> str:
    """How a median's samples are resampled by whole rounds, in words."""
    return (f"percentile bootstrap over the {rounds} rounds of the job: each resample draws {rounds} rounds with "
            f"replacement and takes all of this model's {described} in them ({samples} in all, {samples // rounds} "
            f"per round)")


def paired_median_interval(samples_a: list[float], groups_a: list, samples_b: list[float], groups_b: list, fn,
                           replicates: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile bootstrap interval of fn(median a, median b) for two models timed in the same rounds of one job:
    every replicate draws the same rounds for both (generators seeded alike, the same round labels), so drift
    that moves both models within a round moves both medians, and fn sees it."""
    if sorted(set(groups_a)) != sorted(set(groups_b)):
        raise ValueError(f"rounds {sorted(set(groups_a))} and {sorted(set(groups_b))} differ: nothing to pair")
    return percentile_interval(fn(median_replicates(samples_a, replicates, np.random.default_rng(seed),
                                                    groups=groups_a),
                                  median_replicates(samples_b, replicates, np.random.default_rng(seed),
                                                    groups=groups_b)), level)


def independent_interval(samples_a: list[float], samples_b: list[float], fn, replicates: int, seed: int,
                         level: float, schemes: tuple[dict, dict] = ({}, {})) -> tuple[float, float]:
    """Percentile bootstrap interval of fn(median a, median b) where a and b come from separate runs: each resampled
    on its own (unpaired; one generator, a's draws then b's), each by its scheme (block, strata)."""
    rng = np.random.default_rng(seed)
    return percentile_interval(fn(median_replicates(samples_a, replicates, rng, **schemes[0]),
                                  median_replicates(samples_b, replicates, rng, **schemes[1])), level)


