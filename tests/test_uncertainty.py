"""Test-set uncertainty (qrepro.uncertainty, derived.paired_interval) and verdicts that use an interval
(report.claims.verdict_for), on data whose answer is known."""
import numpy as np
import pytest

from qrepro import uncertainty
from qrepro.derived import FORMULAS, median_interval, paired_interval
from qrepro.metrics_io import MetricStore
from qrepro.report.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, direction_evidence, verdict_for


def _record(scope: str, audit: str, units: int, seed: int = 0, replicates: int = 2000) -> dict:
    return {"scope": scope, "metric": "perplexity_token",
            "details": {"bootstrap": {"audit": audit, "protocol": "token", "unit": "window", "units": units,
                                      "replicates": replicates, "seed": seed, "level": 0.95}}}


def test_the_interval_covers_a_known_perplexity_at_its_level():
    """Row losses drawn from N(mu, sigma): the true perplexity is exp(mu). Over 200 independent test sets, the 95%
    interval must cover it in at least 90% of them."""
    rng = np.random.default_rng(12345)
    mu, sigma, rows, repetitions = 3.0, 0.8, 150, 200
    covered = 0
    for repetition in range(repetitions):
        losses = rng.normal(mu, sigma, size=rows)
        indices = uncertainty.resample_indices(rows, 1000, seed=repetition)
        low, high = uncertainty.percentile_interval(
            uncertainty.perplexity_replicates(losses, np.ones(rows), indices), 0.95)
        covered += low <= np.exp(mu) <= high
    print(f"coverage {covered}/{repetitions}")
    assert covered >= 0.90 * repetitions


def test_replicates_are_the_perplexity_of_each_resample():
    nll, tokens = np.array([2.0, 4.0, 9.0]), np.array([1, 2, 3])
    indices = np.array([[0, 0, 0], [0, 1, 2], [2, 2, 1]])
    expected = [np.exp(6 / 3), np.exp(15 / 6), np.exp(22 / 8)]
    assert uncertainty.perplexity_replicates(nll, tokens, indices) == pytest.approx(expected)


def test_a_paired_interval_is_narrower_than_an_unpaired_one_on_correlated_rows():
    """Two models that score the same hard and easy windows (a shared difficulty per window, small independent
    noise): resampling both on the same windows cancels the difficulty; resampling them apart does not."""
    rng = np.random.default_rng(7)
    windows = 400
    tokens = rng.integers(20, 40, size=windows).astype(float)
    difficulty = rng.normal(4.0, 1.0, size=windows) * tokens
    full = {"token": {"unit": "window", "nll": list(difficulty + rng.normal(0, 2, windows)), "tokens": list(tokens)}}
    qlora = {"token": {"unit": "window", "nll": list(0.98 * difficulty + rng.normal(0, 2, windows)),
                       "tokens": list(tokens)}}
    audits = {"a.json": qlora, "b.json": full}
    change = FORMULAS["change"][1]
    paired, read = paired_interval(_record("qlora", "a.json", windows), _record("full", "b.json", windows), change,
                                   audits)
    assert read == ["a.json", "b.json"] and "paired" in paired["method"]
    # unpaired: the two perplexities resampled independently (different seeds)
    a = uncertainty.perplexity_replicates(qlora["token"]["nll"], tokens, uncertainty.resample_indices(windows, 2000, 1))
    b = uncertainty.perplexity_replicates(full["token"]["nll"], tokens, uncertainty.resample_indices(windows, 2000, 2))
    unpaired = uncertainty.percentile_interval(change(a, b), 0.95)
    print(f"paired {paired['low']:.2f}..{paired['high']:.2f}, unpaired {unpaired[0]:.2f}..{unpaired[1]:.2f}")
    assert paired["high"] - paired["low"] < 0.5 * (unpaired[1] - unpaired[0])
    assert paired["high"] < 0  # QLoRA's 2% lower difficulty shows once the rows are paired


def test_identical_models_give_a_change_interval_that_contains_zero():
    rng = np.random.default_rng(3)
    audit = {"token": {"unit": "window", "nll": list(rng.gamma(5, 20, 300)), "tokens": [32] * 300}}
    interval, _ = paired_interval(_record("qlora", "a.json", 300), _record("full", "b.json", 300),
                                  FORMULAS["change"][1], {"a.json": audit, "b.json": audit})
    assert interval["low"] <= 0 <= interval["high"]


def test_models_resampled_differently_are_not_compared():
    audit = {"token": {"unit": "window", "nll": [1.0] * 10, "tokens": [1] * 10}}
    with pytest.raises(ValueError, match="not resampled alike"):
        paired_interval(_record("qlora", "a.json", 10, seed=1), _record("full", "b.json", 10, seed=2),
                        FORMULAS["change"][1], {"a.json": audit, "b.json": audit})
    # without the audits there is nothing to pair: no interval rather than a made-up one
    assert paired_interval(_record("qlora", "a.json", 10), _record("full", "b.json", 10), FORMULAS["change"][1],
                           {}) is None


@pytest.mark.parametrize("interval, verdict", [
    ({"low": 17.5, "high": 19.5}, REPRODUCED),        # inside 18.73 +- 10%
    ({"low": 25.0, "high": 32.0}, NOT_REPRODUCED),    # wholly above
    ({"low": -25.0, "high": -15.0}, NOT_REPRODUCED),  # the other sign
    ({"low": 15.0, "high": 25.0}, INCONCLUSIVE),      # straddles the upper edge
    ({"low": 10.0, "high": 18.0}, INCONCLUSIVE),      # straddles the lower edge
    (None, REPRODUCED),                               # no interval: the value 18.0 lies in the band
])
def test_a_verdict_uses_the_interval_when_the_file_has_one(interval, verdict):
    assert verdict_for(18.0, interval, published=18.73, rel_tolerance=0.10) == verdict


def test_without_an_interval_the_value_decides():
    assert verdict_for(25.0, None, published=18.73, rel_tolerance=0.10) == NOT_REPRODUCED
    assert verdict_for(-3.0, None, published=-3.1, rel_tolerance=0.05) == REPRODUCED


def test_the_median_interval_covers_a_known_median_at_its_level():
    """Step times drawn from an exponential with scale 0.5 s: the true median is 0.5 ln 2. Over 200 runs of 101
    steps, the 95% bootstrap interval of the median covers it in at least 90%."""
    rng = np.random.default_rng(11)
    covered = sum(low <= 0.5 * np.log(2) <= high for low, high in (
        uncertainty.median_interval(rng.exponential(0.5, 101), 1000, seed, 0.95) for seed in range(200)))
    print(f"coverage {covered}/200")
    assert covered >= 180


def _median_record(scope: str, samples: list[float]) -> dict:
    return {"scope": scope, "metric": "step_time_s", "details": {
        "timed_step_durations_s": samples, "bootstrap": {"statistic": "median", "samples": "timed_step_durations_s",
                                                        "unit": "optimizer step", "replicates": 2000, "seed": 0,
                                                        "level": 0.95}}}


def test_two_runs_of_one_recipe_are_indistinguishable_and_a_slower_one_is_not():
    """Step times of two runs drawn from one distribution: the interval of their change contains 0, and a
    directional claim's evidence says the two are indistinguishable; a run 30% slower is told apart, in the claimed
    direction, and a faster one in the opposite direction."""
    rng = np.random.default_rng(5)
    base = list(rng.normal(0.5, 0.03, 300))
    same, slower = list(rng.normal(0.5, 0.03, 300)), list(rng.normal(0.65, 0.03, 300))
    change = FORMULAS["change"][1]
    outcomes = {}
    for name, samples in (("same", same), ("slower", slower)):
        interval = median_interval(_median_record("qlora", samples), _median_record("full", base), change)
        assert "unpaired" in interval["method"] and "300 and 300 optimizer steps" in interval["method"]
        store = MetricStore()
        store.records[("comparison", name)] = {"value": change(np.median(samples), np.median(base)), "unit": "%",
                                               "interval": interval}
        store.paths[("comparison", name)] = f"comparison/{name}.json"
        outcomes[name] = direction_evidence(store, name, "positive")["outcome"]
        if name == "slower":
            assert 25 < interval["low"] < 30 < interval["high"] < 35
            assert direction_evidence(store, name, "negative")["outcome"] == "opposite direction"
    assert outcomes == {"same": "indistinguishable", "slower": "claimed direction"}


def test_a_ratio_is_indistinguishable_when_its_interval_contains_one_and_untested_without_one():
    store = MetricStore()
    for name, interval in (("ratio_with", {"low": 0.9, "high": 1.2, "level": 0.95}), ("ratio_without", None)):
        store.records[("comparison", name)] = {"value": 1.05, "unit": "x", "interval": interval}
        store.paths[("comparison", name)] = f"comparison/{name}.json"
    assert direction_evidence(store, "ratio_with", "positive")["outcome"] == "indistinguishable"
    assert direction_evidence(store, "ratio_without", "positive")["outcome"] == "no interval"


def test_the_percentile_interval_is_exactly_the_central_share():
    """Coverage tests cannot tell 95% from 90% reliably; the interval's definition can: on 0..1000 the central 95%
    runs from 25 to 975, the central 90% from 50 to 950."""
    assert uncertainty.percentile_interval(np.arange(1001), 0.95) == pytest.approx((25.0, 975.0))
    assert uncertainty.percentile_interval(np.arange(1001), 0.90) == pytest.approx((50.0, 950.0))


def _ar1(rng, n: int, phi: float, mu: float = 1.0, sigma: float = 0.1) -> np.ndarray:
    """A stationary AR(1) series around mu: neighbouring step times correlated by phi; its median is mu."""
    x = np.empty(n)
    x[0] = mu + rng.normal(0, sigma / np.sqrt(1 - phi ** 2))
    for t in range(1, n):
        x[t] = mu + phi * (x[t - 1] - mu) + rng.normal(0, sigma)
    return x


def test_the_block_bootstrap_covers_the_median_of_correlated_steps_where_the_iid_one_does_not():
    """Step times with lag-1 correlation 0.6 (a run's measured lag-1 correlations were 0.35 and 0.69): over 200
    series of 400 steps, the circular block bootstrap's 95% interval covers the true median in >= 90%; resampling
    the steps as independent covers it far less often (its interval is too narrow)."""
    rng = np.random.default_rng(2024)
    steps, repetitions = 400, 200
    block = uncertainty.block_length(steps)
    covered = {"block": 0, "iid": 0}
    for repetition in range(repetitions):
        series = _ar1(rng, steps, 0.6)
        for name, length in (("block", block), ("iid", 1)):
            low, high = uncertainty.median_interval(series, 1000, repetition, 0.95, block=length)
            covered[name] += low <= 1.0 <= high
    print(f"block length {block}: coverage {covered}")
    assert block == 7 and covered["block"] >= 0.90 * repetitions
    assert covered["iid"] < covered["block"] - 0.08 * repetitions


def test_block_and_stratified_resamples_keep_what_they_promise():
    rng = np.random.default_rng(1)
    positions = uncertainty.resample_positions(10, 500, rng, block=3)
    assert positions.shape == (500, 10)
    # circular: a block may start at the last positions and wrap to the first (9 then 0)
    assert ((positions[:, :-1] == 9) & (positions[:, 1:] == 0)).any()
    steps = np.diff(positions, axis=1) % 10
    # inside a block, each position follows the one before (circularly); a new block may start anywhere
    assert (steps[:, [0, 1, 3, 4, 6, 7]] == 1).all() and not (steps[:, [2, 5, 8]] == 1).all()
    strata = ["a"] * 3 + ["b"] * 5 + ["c"] * 2
    positions = uncertainty.resample_positions(10, 500, rng, strata=strata)
    labels = np.array(strata)[positions]
    assert (labels == np.array(strata)).all()  # every prompt keeps its own runs and their count
    assert len(np.unique(positions[:, 3:8])) == 5  # and draws among all of them


def test_audits_of_other_units_are_not_paired():
    """Pairing assumes unit i is the same window in both audits: windows of other token counts are refused."""
    a = {"token": {"unit": "window", "nll": [1.0, 2.0, 3.0], "tokens": [10, 10, 5]}}
    b = {"token": {"unit": "window", "nll": [1.0, 2.0, 3.0], "tokens": [10, 5, 10]}}
    with pytest.raises(ValueError, match="units differ"):
        paired_interval(_record("qlora", "a.json", 3), _record("full", "b.json", 3), FORMULAS["change"][1],
                        {"a.json": a, "b.json": b})


def test_a_bound_near_no_difference_prints_with_the_decimals_that_tell_it_apart():
    from qrepro.report.claims import distinct_decimals
    assert distinct_decimals([1.00003, 1.2], 1.0) == 5  # "1.00003", not "1.00": it excludes 1
    assert distinct_decimals([0.5, 1.2], 1.0) == 2
    assert distinct_decimals([-0.004, 3.0], 0.0) == 3


def test_a_comparison_of_two_medians_resamples_each_side_as_its_own_interval_does():
    """Step times (blocks) against inference-like runs (within prompts): the comparison's interval is the one each
    file's bootstrap record describes, not an independent resampling of both."""
    rng = np.random.default_rng(9)
    steps, runs, prompts = list(_ar1(rng, 120, 0.7)), list(rng.gamma(9, 0.1, 12)), [1] * 6 + [2] * 6
    boot = {"statistic": "median", "unit": "run", "replicates": 1000, "seed": 3, "level": 0.95}
    a = {"scope": "qlora", "metric": "m", "details": {"d": steps, "bootstrap": {**boot, "samples": "d", "block": 5,
                                                                               "strata": None}}}
    b = {"scope": "full", "metric": "m", "details": {"d": runs, "p": prompts,
                                                     "bootstrap": {**boot, "samples": "d", "block": 1, "strata": "p"}}}
    change = FORMULAS["change"][1]
    interval = median_interval(a, b, change)
    generator = np.random.default_rng(3)  # by hand: a's block resamples, then b's within each prompt
    starts = generator.integers(0, 120, size=(1000, 24))
    a_medians = np.median(np.asarray(steps)[((starts[:, :, None] + np.arange(5)) % 120).reshape(1000, -1)], axis=1)
    b_positions = np.empty((1000, 12), dtype=int)
    for members in (np.arange(6), np.arange(6, 12)):
        b_positions[:, members] = members[generator.integers(0, 6, size=(1000, 6))]
    b_medians = np.median(np.asarray(runs)[b_positions], axis=1)
    expected = np.percentile(change(a_medians, b_medians), [2.5, 97.5])
    assert (interval["low"], interval["high"]) == pytest.approx(tuple(expected))
    assert "circular blocks of 5" in interval["method"] and "within each group of details.p" in interval["method"]


def test_sum_by_cluster_makes_a_bootstrap_over_whole_clusters():
    """Windows summed per article, then resampled: each replicate is a draw of whole articles, by hand."""
    nll, tokens, owners = [1.0, 2.0, 3.0, 4.0, 5.0], [1, 2, 3, 4, 5], ["a", "a", "b", "c", "c"]
    units = uncertainty.sum_by_cluster(nll, tokens, owners)
    assert units == {"nll": [3.0, 3.0, 9.0], "tokens": [3, 3, 9]}
    indices = np.array([[0, 0, 2], [1, 2, 2]])
    replicates = uncertainty.perplexity_replicates(units["nll"], units["tokens"], indices)
    assert replicates == pytest.approx([np.exp((3 + 3 + 9) / (3 + 3 + 9)), np.exp((3 + 9 + 9) / (3 + 9 + 9))])


def _round_record(scope: str, times: list[float], rounds: list[int], pairing: str = "job 1") -> dict:
    boot = {"statistic": "median", "samples": "run_times_s", "unit": "timed run", "replicates": 1000, "seed": 4,
            "level": 0.95, "block": 1, "strata": None, "groups": "run_rounds", "pairing": pairing}
    return {"scope": scope, "metric": "inference_time_s",
            "details": {"run_times_s": times, "run_rounds": rounds, "bootstrap": boot}}


def _drifting_rounds(rng, rounds: int, prompts: int, speed: float) -> tuple[list[float], list[int], np.ndarray]:
    """Run times of two models timed in the same rounds: each round's drift (shared by both models) times a model's
    speed, plus run noise. Returns b's times, their round labels and the drift, for a's to share."""
    drift = rng.lognormal(0, 0.3, rounds)
    times = [speed * drift[r] * rng.lognormal(0, 0.02) for r in range(rounds) for _ in range(prompts)]
    return times, [r + 1 for r in range(rounds) for _ in range(prompts)], drift


def test_the_round_paired_interval_is_the_same_rounds_drawn_for_both_models_by_hand():
    """Two models timed in 8 rounds of 4 prompts: the comparison's interval recomputed with numpy alone: draw 8 round
    indices with replacement per resample (numpy's generator, the record's seed), take each model's runs of those
    rounds, the median of each, their ratio, the central 95%."""
    rng = np.random.default_rng(21)
    rounds, prompts = 8, 4
    drift = rng.lognormal(0, 0.3, rounds)
    labels = [r + 1 for r in range(rounds) for _ in range(prompts)]
    a = [1.3 * drift[r - 1] * rng.lognormal(0, 0.02) for r in labels]
    b = [1.0 * drift[r - 1] * rng.lognormal(0, 0.02) for r in labels]
    ratio = FORMULAS["ratio"][1]
    interval = median_interval(_round_record("qlora", a, labels), _round_record("full", b, labels), ratio)
    draws = np.random.default_rng(4).integers(0, rounds, size=(1000, rounds))
    by_round = lambda x: np.asarray(x).reshape(rounds, prompts)  # noqa: E731  (labels are in round order)
    medians = [np.median(by_round(x)[draws].reshape(1000, -1), axis=1) for x in (a, b)]
    assert (interval["low"], interval["high"]) == pytest.approx(tuple(np.percentile(medians[0] / medians[1], [2.5, 97.5])))
    assert "paired by round" in interval["method"] and "8 rounds" in interval["method"]
    assert "not what varies between jobs" in interval["method"]
    # the drift both models share cancels in the ratio: 1.3 lies inside a narrow interval
    assert interval["low"] < 1.3 < interval["high"] and interval["high"] - interval["low"] < 0.1
    # one model's own interval: the same drawn rounds (the same seed)
    own, record = uncertainty.median_bootstrap(b, "timed run", "run_times_s",
                                               {"replicates": 1000, "seed": 4, "level": 0.95}, "timed runs",
                                               groups=labels, groups_field="run_rounds", pairing="job 1")
    assert (own["low"], own["high"]) == pytest.approx(tuple(np.percentile(medians[1], [2.5, 97.5])))
    assert record["groups"] == "run_rounds" and record["pairing"] == "job 1"
    assert "drift between rounds within this one job" in own["method"]


def test_drift_between_rounds_widens_a_models_own_interval_beyond_the_runs_noise():
    """Resampling whole rounds carries the drift between rounds into a median's interval; resampling runs within
    prompts (the old scheme) sees only as much spread as the runs show, and is narrower on drifting data."""
    rng = np.random.default_rng(3)
    times, labels, _ = _drifting_rounds(rng, 10, 4, 1.0)
    settings = {"replicates": 2000, "seed": 0, "level": 0.95}
    by_round, _ = uncertainty.median_bootstrap(times, "timed run", "run_times_s", settings, "timed runs",
                                               groups=labels, groups_field="run_rounds", pairing="j")
    prompts = [1 + i % 4 for i in range(len(times))]
    within, _ = uncertainty.median_bootstrap(times, "timed run", "run_times_s", settings, "timed runs",
                                             strata=prompts, strata_field="run_prompts")
    assert by_round["high"] - by_round["low"] >= within["high"] - within["low"]


def test_rounds_of_different_jobs_are_not_paired_and_unequal_rounds_are_refused():
    labels = [1, 1, 2, 2, 3, 3]
    a, b = _round_record("qlora", [1.0] * 6, labels, "job 1"), _round_record("full", [1.0] * 6, labels, "job 2")
    with pytest.raises(ValueError, match="different jobs"):
        median_interval(a, b, FORMULAS["ratio"][1])
    with pytest.raises(ValueError, match="unequal size"):
        uncertainty.resample_positions(5, 10, np.random.default_rng(0), groups=[1, 1, 2, 2, 2])
    positions = uncertainty.resample_positions(6, 200, np.random.default_rng(0), groups=labels)
    pairs = positions.reshape(200, 3, 2)  # every drawn round brings both of its runs, side by side
    assert (pairs[:, :, 1] == pairs[:, :, 0] + 1).all() and (pairs[:, :, 0] % 2 == 0).all()
