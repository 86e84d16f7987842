"""Training seeds, in one place: which seeds a profile trains (training.seeds), the `seeds` field of a metric file
(each seed's value, their mean and sd) and the t interval over seeds, a metric aggregated over the seeds' runs, a
comparison paired by seed, and what the runs' details say together. The run folders per seed are laid out in
rules/common.smk (RUN, run_dir) from training_seeds. Shared layer: numpy (scipy for the t quantile), no torch."""
from __future__ import annotations

import math

import numpy as np

from qrepro import uncertainty


def training_seeds(config: dict) -> list[int]:
    """The training seeds: training.seeds, or the one config seed when it is null (the paper's single run)."""
    return list(config["training"]["seeds"] or [config["seed"]])


def seed_summary(seeds: list[int], values: list) -> dict:
    """The `seeds` field of a metric file: each training seed's value, and for numbers their mean, sample sd
    (n - 1 in the denominator), min and max."""
    summary = {"n": len(values), "seeds": list(seeds), "values": list(values)}
    if len(seeds) != len(values):
        raise ValueError(f"{len(seeds)} seeds but {len(values)} values")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        array = np.asarray(values, dtype=np.float64)
        summary.update(mean=float(array.mean()), sd=float(array.std(ddof=1)) if len(array) > 1 else 0.0,
                       min=float(array.min()), max=float(array.max()))
    return summary


def t_interval(values: list[float], level: float) -> tuple[float, float]:
    """Student-t interval of the mean of independent values (one per training seed): mean +- t(n-1) sd / sqrt(n)."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        raise ValueError("an interval over seeds needs at least 2 seeds")
    half = stats.t.ppf((1 + level) / 2, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return float(array.mean() - half), float(array.mean() + half)


def seed_spread(seeds: list[int], values: list, level: float, what: str) -> tuple[dict, dict | None]:
    """The `seeds` field of values computed once per training seed, and the t interval of their mean (its method
    naming `what` the values are), or None where they are not numbers or all the same."""
    summary = seed_summary(seeds, values)
    if not summary.get("sd"):
        return summary, None
    low, high = t_interval(values, level)
    return summary, uncertainty.interval(low, high, level, t_method(len(values), what))


def t_method(n: int, what: str) -> str:
    return (f"Student-t interval of the mean over {n} training seeds ({n - 1} degrees of freedom): {what}; it holds "
            "what varies from one training run to another (its seed: data order, LoRA initialisation, dropout; for a "
            "time, also the machine from run to run) on this fixed data and test split, not the test split's "
            "sampling noise")


def seed_comparison(a: dict, b: dict, fn, level: float) -> tuple[dict, dict | None] | None:
    """With several training seeds: the formula applied to each seed's pair (a seed's a with the same seed's b; an
    input with one value, such as the base model's, pairs with every seed), as a `seeds` field, and the t interval
    of their mean (None where every seed gives the same value); None unless an input carries seeds."""
    seeds_a, seeds_b = a.get("seeds"), b.get("seeds")
    if not seeds_a and not seeds_b:
        return None
    if seeds_a and seeds_b and seeds_a["seeds"] != seeds_b["seeds"]:
        raise ValueError(f"{a['scope']}/{a['metric']} (seeds {seeds_a['seeds']}) and {b['scope']}/{b['metric']} "
                         f"(seeds {seeds_b['seeds']}) cannot be paired by seed")
    seeds = (seeds_a or seeds_b)["seeds"]
    values = [fn(x, y) for x, y in zip(seed_values(a, seeds), seed_values(b, seeds))]
    what = ("the formula applied to each seed's pair of runs (seeds.values), paired by seed" if seeds_a and seeds_b
            else "the formula applied to each seed's run and the one untrained value (seeds.values)")
    return seed_spread(seeds, values, level, what)


def seed_aggregate(records: list[dict], seeds: list[int], paths: list[str], level: float) -> dict:
    """One metric over the training seeds' runs (their records and files, in seed order) as metric_record's
    arguments: the mean as the value (the common value where it is not a number, which every seed must then
    give), each seed's value in `seeds`, the t interval of the mean where the seeds differ (each seed's own interval
    in details.seed_intervals) and the method saying so. Its other details are the first seed's run's; an audit
    record (details.bootstrap) names every seed's audit, for the paired test-set interval of a comparison."""
    first = records[0]
    for record, path in zip(records, paths):
        if (record["metric"], record["scope"], record["unit"]) != (first["metric"], first["scope"], first["unit"]):
            raise ValueError(f"{path} is not the same metric as {paths[0]}")
    values = [record["value"] for record in records]
    summary, interval = seed_spread(seeds, values, level, "the runs' values")
    same = len(set(map(str, values))) == 1
    if "mean" in summary:
        value = values[0] if same else summary["mean"]
    elif same:
        value = values[0]
    else:
        raise ValueError(f"{first['scope']}/{first['metric']} differs between training seeds and is not a number: "
                         f"{dict(zip(seeds, values))}")
    merged = merged_run_facts([r.get("details", {}) for r in records], seeds)
    details = {**first.get("details", {}), **merged, "details_from_seed": seeds[0],
               "seed_methods": {str(seed): record["method"] for seed, record in zip(seeds, records)}}
    if any("interval" in record for record in records):
        details["seed_intervals"] = {str(seed): record.get("interval") for seed, record in zip(seeds, records)}
    for key in ("bootstrap", "bootstrap_by_window"):
        if key in details and "audit" in details[key]:
            boot = {k: v for k, v in details[key].items() if k != "audit"}
            details[key] = {**boot, "audits": [record["details"][key]["audit"] for record in records]}
    one_method = len({record["method"] for record in records}) == 1
    facts = list(dict.fromkeys(RUN_FACTS[key] for key in merged if key in RUN_FACTS))
    method = (f"{'Mean' if 'mean' in summary and not same else 'Value'} over {len(seeds)} training seeds' runs "
              f"(seeds {', '.join(map(str, seeds))}; each run's value in seeds.values{', all equal' if same else ''}, "
              f"its file in inputs, its method in details.seed_methods; "
              f"{', '.join(facts) + ' in details, other' if facts else 'other'} "
              f"details seed {seeds[0]}'s). "
              + (f"Each run: {first['method']}" if one_method else
                 f"Seed {seeds[0]}'s run (the others' methods differ in what they observed): {first['method']}"))
    tainted = [seed for seed, record in zip(seeds, records) if record.get("contaminated")]
    if tainted:  # a mean over runs one of which is contaminated is contaminated
        details["contaminated_seeds"] = tainted
    return dict(metric=first["metric"], scope=first["scope"], value=value, unit=first["unit"], method=method,
                inputs=list(paths), timing=first["timing"], details=details, interval=interval, seeds=summary,
                contaminated=bool(tainted))


# what a timed metric's details say of its run, merged over the seeds' runs (merged_run_facts), in words
RUN_FACTS = {"ran_alone": "whether every run ran alone", "observed_load": "the load observed over all runs",
             "outliers": "the outlier steps of all runs", "step_outliers": "the outlier steps of all runs"}


def merged_run_facts(details: list[dict], seeds: list[int]) -> dict:
    """What a timed metric's details say of its run, over the seeds' runs (several): every one ran alone or not, the
    load observed over all of them (core-seconds summed; each run's in seed_observed_load), their outlier steps
    (each tagged with its seed, counts and excess seconds summed). Only the facts the runs' details hold."""
    from qrepro import machine_load

    merged = {}
    if all("ran_alone" in d for d in details):
        merged["ran_alone"] = all(d["ran_alone"] for d in details)
    if all("observed_load" in d for d in details):
        observed = [d["observed_load"] for d in details]
        combined = {k: v for k, v in machine_load.combined(observed, observed[0]["threshold_cores"]).items()
                    if k not in ("segments", "load_average_1min")}
        combined["runs_with_outside_load"] = [seed for seed, o in zip(seeds, observed) if o["outside_load_observed"]]
        combined["how"] = (observed[0]["how"] + "; over the training seeds' runs: wall and CPU seconds summed (each "
                           "run's in seed_observed_load; runs_with_outside_load: the seeds whose own run was above "
                           "the threshold)")
        merged["observed_load"] = combined
        merged["seed_observed_load"] = {str(seed): o for seed, o in zip(seeds, observed)}
    for listed, count, excess in (("outliers", "outlier_count", "outlier_excess_s"),
                                  ("step_outliers", None, "step_outlier_excess_s")):
        if all(listed in d for d in details):
            merged[listed] = [{**o, "seed": seed} for seed, d in zip(seeds, details) for o in d[listed]]
            if count:
                merged[count] = len(merged[listed])
            if all(excess in d for d in details):
                merged[excess] = sum(d[excess] for d in details)
    if all("outlier_threshold_s" in d for d in details):
        merged["outlier_threshold_s"] = {str(seed): d["outlier_threshold_s"] for seed, d in zip(seeds, details)}
    return merged


def seed_values(record: dict, seeds: list[int]) -> list:
    """A metric's value for each training seed: its seeds.values (in `seeds` order), or its one value for all."""
    if "seeds" not in record:
        return [record["value"]] * len(seeds)
    if record["seeds"]["seeds"] != list(seeds):
        raise ValueError(f"{record['scope']}/{record['metric']} has seeds {record['seeds']['seeds']}, not {seeds}")
    return list(record["seeds"]["values"])


def mean_over_seeds(per_seed: list[dict[str, dict]], seeds: list[int], level: float) -> dict[str, dict]:
    """Records a job computed once per training seed (name -> value, inputs, details...), as one record each: the
    mean as the value, each seed's in `seeds`, the t interval where they differ (write_metrics' method says so)."""
    out = {}
    for name, first in per_seed[0].items():
        summary, interval = seed_spread(seeds, [records[name]["value"] for records in per_seed], level,
                                                    "the values computed from each seed's run")
        out[name] = {**first, "value": summary["mean"], "seeds": summary,
                     "details": {**first.get("details", {}), "details_from_seed": seeds[0],
                                 "seed_details": {str(s): records[name].get("details", {})
                                                  for s, records in zip(seeds, per_seed)}}}
        if interval:
            out[name]["interval"] = interval
    return out


def mean_method(name: str, value, seeds_field: dict, method: str) -> str:
    """The method text of a value computed once per training seed (its `seeds` field): the mean of the seeds' values,
    which it must be."""
    if "mean" not in seeds_field:
        return method
    if not math.isclose(value, seeds_field["mean"], rel_tol=1e-12, abs_tol=1e-300):
        raise ValueError(f"metric {name}: its value {value!r} is not its seeds' mean {seeds_field['mean']!r}")
    equal = seeds_field["sd"] == 0
    return (f"{'The same' if equal else 'Mean'} over {seeds_field['n']} training seeds "
            f"({', '.join(map(str, seeds_field['seeds']))}): computed from each seed's run(s), each seed's value "
            f"in seeds.values. {method}")
