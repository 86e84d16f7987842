"""Several training seeds (training.seeds): aggregates over the seeds' runs (seeds.seed_aggregate) and comparisons
paired by seed (seeds.seed_comparison), checked against numpy and a t table; the seeded pipeline is checked in
test_pipeline.py."""
import shutil

import numpy as np
import pytest

from conftest import ROOT, snakemake
from qrepro import uncertainty
from qrepro.config_checks import merged_profile
from qrepro.derived import FORMULAS, paired_interval
from qrepro.seeds import seed_aggregate, seed_comparison, seed_summary
from qrepro.metrics_io import metric_record, read_metric, write_record
from test_pipeline import TIMED_RULES, _job_events

T_975_2DF = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (any t table)


def _seed_files(tmp_path, values, metric="perplexity_token", scope="qlora", interval=True):
    paths, seeds = [], [42, 43, 44][:len(values)]
    for seed, value in zip(seeds, values):
        path = tmp_path / f"seeds/{seed}/metrics/{scope}/{metric}.json"
        extra = {"interval": uncertainty.interval(value - 1, value + 1, 0.95, "a test interval")} if interval else {}
        write_record(path, metric_record(metric, scope, value, "perplexity", f"Token-level, seed {seed}.",
                                         [f"seed{seed}.bin"], **extra))
        paths.append(str(path))
    return seeds, paths


def test_an_aggregate_is_numpys_mean_and_sd_of_the_seed_files(tmp_path):
    seeds, paths = _seed_files(tmp_path, [101.5, 98.25, 104.0])
    record = metric_record(**seed_aggregate([read_metric(p) for p in paths], seeds, paths, 0.95))
    values = np.array([read_metric(p)["value"] for p in paths])
    assert record["value"] == pytest.approx(np.mean(values))
    assert record["seeds"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert record["seeds"]["values"] == list(values) and record["seeds"]["n"] == 3
    half = T_975_2DF * np.std(values, ddof=1) / np.sqrt(3)
    assert (record["interval"]["low"], record["interval"]["high"]) == pytest.approx((values.mean() - half,
                                                                                     values.mean() + half))
    assert sorted(record["inputs"]) == sorted(paths)  # the files it really read
    assert record["details"]["seed_intervals"]["43"]["low"] == 97.25  # each seed's own interval kept
    assert "Mean over 3 training seeds" in record["method"] and "3 training seeds (2 degrees of freedom)" in \
        record["interval"]["method"]


def test_a_count_every_seed_shares_is_kept_as_is_without_an_interval(tmp_path):
    seeds, paths = _seed_files(tmp_path, [2048, 2048, 2048], metric="trainable_params", interval=False)
    record = seed_aggregate([read_metric(p) for p in paths], seeds, paths, 0.95)
    assert record["value"] == 2048 and isinstance(record["value"], int)
    assert record["interval"] is None and record["seeds"]["sd"] == 0


def test_a_label_that_differs_between_seeds_is_refused(tmp_path):
    records = [metric_record("precision", "full", dtype, "dtype", "what ran, a test", []) for dtype in ("fp32", "bf16")]
    with pytest.raises(ValueError, match="differs between training seeds"):
        seed_aggregate(records, [1, 2], ["a", "b"], 0.95)


def test_a_comparison_pairs_the_runs_by_seed():
    """The change of each seed's QLoRA run against the same seed's full run; its interval is the t interval of
    those three changes. Shared seed effects cancel: seed-paired changes barely vary although the runs do."""
    qlora = {"scope": "qlora", "metric": "m", "value": 0.0,
             "seeds": seed_summary([42, 43, 44], [110.0, 121.0, 132.0])}
    full = {"scope": "full", "metric": "m", "value": 0.0,
            "seeds": seed_summary([42, 43, 44], [100.0, 110.0, 120.5])}
    summary, interval = seed_comparison(qlora, full, FORMULAS["change"][1], 0.95)
    changes = np.array([10.0, 10.0, 100 * (132 / 120.5 - 1)])
    assert summary["values"] == pytest.approx(changes)
    half = T_975_2DF * np.std(changes, ddof=1) / np.sqrt(3)
    assert (interval["low"], interval["high"]) == pytest.approx((changes.mean() - half, changes.mean() + half))
    assert interval["high"] - interval["low"] < 5  # the runs themselves spread over 20 perplexity points
    # an untrained input (the base model) pairs with every seed
    base = {"scope": "base", "metric": "m", "value": 200.0}
    summary, _ = seed_comparison(full, base, FORMULAS["change"][1], 0.95)
    assert summary["values"] == pytest.approx([-50.0, -45.0, -39.75])
    with pytest.raises(ValueError, match="cannot be paired by seed"):
        seed_comparison(qlora, {**full, "seeds": seed_summary([1, 2, 3], [1.0, 2.0, 3.0])},
                        FORMULAS["change"][1], 0.95)


def test_the_test_set_interval_over_seeds_averages_each_resamples_seed_paired_values():
    """An aggregate names each seed's audit; a replicate's value is the mean over seeds of the formula on that
    replicate, recomputed here from the resample indices by hand."""
    rng = np.random.default_rng(0)
    windows, seeds = 50, 3
    audits = {f"{m}{s}.json": {"token": {"unit": "window", "nll": list(rng.gamma(4, 10, windows)),
                                         "tokens": [16] * windows}}
              for m in ("q", "f") for s in range(seeds)}
    boot = {"protocol": "token", "unit": "window", "units": windows, "replicates": 300, "seed": 5, "level": 0.95}
    a = {"scope": "qlora", "metric": "perplexity_token",
         "details": {"bootstrap": {**boot, "audits": [f"q{s}.json" for s in range(seeds)]}}}
    b = {"scope": "full", "metric": "perplexity_token",
         "details": {"bootstrap": {**boot, "audits": [f"f{s}.json" for s in range(seeds)]}}}
    interval, read = paired_interval(a, b, FORMULAS["change"][1], audits)
    assert read == sorted(audits)
    indices = np.random.default_rng(5).integers(0, windows, size=(300, windows))

    def ppl(path, row):
        return np.exp(np.sum(np.array(audits[path]["token"]["nll"])[row]) / (16 * windows))
    by_hand = [np.mean([100 * (ppl(f"q{s}.json", row) / ppl(f"f{s}.json", row) - 1) for s in range(seeds)])
               for row in indices]
    assert (interval["low"], interval["high"]) == pytest.approx(tuple(np.percentile(by_hand, [2.5, 97.5])))
    assert "mean over the 3 training seeds" in interval["method"]
    # the base model (not trained, one audit) pairs with every seed's run
    base = {"scope": "base", "metric": "perplexity_token", "details": {"bootstrap": {**boot, "audit": "f0.json"}}}
    interval, _ = paired_interval(a, base, FORMULAS["change"][1], audits)
    by_hand = [np.mean([100 * (ppl(f"q{s}.json", row) / ppl("f0.json", row) - 1) for s in range(seeds)])
               for row in indices]
    assert (interval["low"], interval["high"]) == pytest.approx(tuple(np.percentile(by_hand, [2.5, 97.5])))


# --- the seeded pipeline: configs/seeds.yaml over the test profile, from a copy of the one-seed test run ---------

SEED_OVERLAY = merged_profile(ROOT / "config.yaml", ROOT / "configs/seeds.yaml")["training"]["seeds"]


@pytest.fixture(scope="module")
def seeded_run(test_run, tmp_path_factory):
    """`snakemake html` with configs/seeds.yaml over the finished one-seed test run (data and base model reused)."""
    dest = tmp_path_factory.mktemp("seeded") / "run"
    shutil.copytree(test_run, dest, symlinks=True)
    snakemake(dest, "--configfile", "configs/test.yaml", "configs/seeds.yaml", "--cores", "2", "html")
    return dest


def _seed_file(run, seed, path):
    return run / path.replace("results/", f"results/seeds/{seed}/", 1)


def test_each_aggregate_is_the_mean_and_sd_of_its_seeds_files(seeded_run):
    from qrepro import catalogue
    # what a training seed changes: the trained variants' training and perplexity files, one per seed's run
    seeded = [spec.path for spec in catalogue.load(ROOT / "paper/metrics.yaml").specs.values()
              if spec.rule in ("finetune", "perplexity") and spec.scope in ("full", "qlora")]
    aggregates = [seeded_run / path for path in seeded]
    assert len(aggregates) >= 6 and len(SEED_OVERLAY) == 3
    for path in aggregates:
        record = read_metric(path)
        relative = str(path.relative_to(seeded_run))
        values = [read_metric(_seed_file(seeded_run, seed, relative))["value"] for seed in SEED_OVERLAY]
        assert record["seeds"]["n"] == 3 and record["seeds"]["values"] == values, relative
        assert sorted(record["inputs"]) == sorted(str(_seed_file(seeded_run, s, relative).relative_to(seeded_run))
                                                  for s in SEED_OVERLAY)
        if isinstance(values[0], (int, float)):
            assert record["value"] == pytest.approx(np.mean(values), rel=1e-12), relative
            assert record["seeds"]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-15), relative
    # training seeds change the trained numbers: the final loss and perplexities differ from seed to seed
    for name in ("full/train_loss_final", "qlora/train_loss_final", "qlora/perplexity_token"):
        assert read_metric(seeded_run / f"results/metrics/{name}.json")["seeds"]["sd"] > 0, name


def test_one_seed_trains_the_same_weights_every_time_and_another_seed_does_not(test_run, seeded_run):
    """Seed 42 of the three-seed build retrains what the one-seed build (config seed 42) trained, in another process:
    identical tensors. Seeds 43 and 44 change data order, LoRA initialisation and dropout: other weights."""
    from safetensors.numpy import load_file
    assert SEED_OVERLAY[0] == merged_profile(ROOT / "config.yaml", ROOT / "configs/test.yaml")["seed"]
    for variant, name in (("full", "model.safetensors"), ("qlora", "adapter_model.safetensors")):
        one_seed = load_file(test_run / f"results/models/{variant}/{name}")
        runs = {seed: load_file(seeded_run / f"results/seeds/{seed}/models/{variant}/{name}") for seed in SEED_OVERLAY}
        assert one_seed.keys() == runs[42].keys()
        assert all(np.array_equal(one_seed[k], runs[42][k]) for k in one_seed), variant
        for seed in SEED_OVERLAY[1:]:
            assert not all(np.array_equal(runs[42][k], runs[seed][k]) for k in one_seed), (variant, seed)


def test_comparisons_pair_the_seeds_runs_and_the_report_shows_mean_and_sd(seeded_run):
    change = read_metric(seeded_run / "results/metrics/comparison/perplexity_change_percent_token.json")
    per_seed = [100 * (read_metric(seeded_run / f"results/seeds/{s}/metrics/qlora/perplexity_token.json")["value"]
                       / read_metric(seeded_run / f"results/seeds/{s}/metrics/full/perplexity_token.json")["value"] - 1)
                for s in SEED_OVERLAY]
    assert change["seeds"]["values"] == pytest.approx(per_seed, rel=1e-12)
    assert change["value"] == pytest.approx(np.mean(per_seed), rel=1e-12)  # the centre of its sd and interval
    half = T_975_2DF * np.std(per_seed, ddof=1) / np.sqrt(3)
    assert (change["interval"]["low"], change["interval"]["high"]) == pytest.approx(
        (np.mean(per_seed) - half, np.mean(per_seed) + half), rel=1e-9)
    # the test set's own interval stays, over every seed's audit
    assert {f"results/seeds/{s}/eval/{m}/perplexity_audit.json" for s in SEED_OVERLAY for m in ("full", "qlora")} <= \
        set(change["inputs"]) and "test_set_interval" in change["details"]
    html = (seeded_run / "report/report.html").read_text()
    sd = read_metric(seeded_run / "results/metrics/qlora/perplexity_token.json")["seeds"]["sd"]
    assert f"± {sd:.2f} (n=3)" in html


def test_the_seeds_timed_runs_ran_one_after_another(seeded_run):
    logs = [p for p in (seeded_run / ".snakemake/log").glob("*.snakemake.log") if "configs/seeds.yaml" in p.read_text()]
    assert len(logs) == 1
    running, finetunes = {}, 0
    for event, job, rule in _job_events(logs[0].read_text()):
        if event == "start":
            assert not (rule in TIMED_RULES and running) and not (set(running.values()) & TIMED_RULES), (rule, running)
            running[job] = rule
            finetunes += rule.startswith("finetune")
        else:
            running.pop(job)
    assert finetunes == 2 * len(SEED_OVERLAY)


def test_mfu_is_computed_for_each_seeds_run_and_averaged(seeded_run):
    """Model FLOPs / each seed's median step / the device peak, then the mean: recomputed from the files."""
    metrics = seeded_run / "results/metrics"
    peak = read_metric(metrics / "device/peak_flops.json")["value"]
    for variant in ("full", "qlora"):
        flops = read_metric(metrics / f"{variant}/flops_per_step_analytic.json")["value"]
        steps = [read_metric(_seed_file(seeded_run, s, f"results/metrics/{variant}/step_time_s.json"))["value"]
                 for s in SEED_OVERLAY]
        mfu = read_metric(metrics / f"{variant}/mfu_analytic.json")
        expected = [100 * flops / step / peak for step in steps]
        assert mfu["seeds"]["values"] == pytest.approx(expected, rel=1e-12)
        assert mfu["value"] == pytest.approx(np.mean(expected), rel=1e-12) and "Mean over 3 training seeds" in \
            mfu["method"]


def test_what_each_run_says_of_itself_is_merged_over_the_seeds():
    """Ran alone only if every run did; the load over all runs is their outside CPU seconds over their wall seconds
    (here 0.6 / 30 = 0.02 cores, below the threshold, although seed 43's run alone was at 0.5 / 10 = 0.05)."""
    from qrepro.seeds import merged_run_facts

    def run(wall, outside, alone, outliers):
        load = {"wall_s": wall, "timed_cpu_s": 2 * wall, "outside_cpu_s": outside, "steal_s": 0.0,
                "machine_busy_cpu_s": 2 * wall + outside, "threshold_cores": 0.04, "how": "test",
                "outside_cores_mean": outside / wall, "outside_load_observed": outside / wall > 0.04}
        return {"ran_alone": alone, "outliers": outliers, "outlier_count": len(outliers),
                "outlier_excess_s": 0.5 * len(outliers), "observed_load": load}
    merged = merged_run_facts([run(10, 0.05, True, []), run(10, 0.5, False, [{"step": 7, "seconds": 2.0}]),
                               run(10, 0.05, True, [])], [42, 43, 44])
    assert merged["ran_alone"] is False
    assert merged["observed_load"]["outside_cores_mean"] == pytest.approx(0.6 / 30)
    assert merged["observed_load"]["outside_load_observed"] is False
    assert merged["observed_load"]["runs_with_outside_load"] == [43]
    assert merged["outliers"] == [{"step": 7, "seconds": 2.0, "seed": 43}] and merged["outlier_count"] == 1
    assert merged["outlier_excess_s"] == 0.5
