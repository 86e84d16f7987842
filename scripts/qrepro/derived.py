"""Derived numbers: the formulas that combine metric files into new ones. The catalogue (paper/metrics.yaml) says
which files each derived number combines; this module says only how. Shared layer, no torch.

Comparisons (results/metrics/comparison/<name>.json) take two files, a and b. The kinds are the paper's own
(paper/PROTOCOL.md, Table 12 "Improvement"):
  ratio      a / b
  reduction  100 x (1 - a / b)     the paper's "x% fewer/smaller/less", and its (s - q) / s for times
  change     100 x (a / b - 1)     the paper's (q - s) / s for tokens/s and perplexity, and "x% longer"
  points     a - b                 MFU, in percentage points

Figure 2's radar points (comparison/radar_<normalization>_<variant>_<axis>.json) take standard's value s and
QLoRA's q on one axis: the paper's normalization by the axis's formula (PAPER_RADAR), the consistent one by
"the better of the two is 1" (CONSISTENT_RADAR, by whether lower or higher is better).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrepro import seeds, uncertainty
from qrepro.metrics_io import MetricStore, metric_key

FORMULAS = {
    "ratio": ("a / b", lambda a, b: a / b),
    "reduction": ("100 x (1 - a / b)", lambda a, b: 100 * (1 - a / b)),
    "change": ("100 x (a / b - 1)", lambda a, b: 100 * (a / b - 1)),
    "points": ("a - b", lambda a, b: a - b),
}
UNITS = {"ratio": "x", "reduction": "%", "change": "%", "points": "percentage points"}

PAPER_RADAR = {  # the paper's Figure 2 (paper/PROTOCOL.md): QLoRA's point; standard is drawn at a constant
    "one_minus_ratio": ("1 - q / s", lambda s, q: 1 - q / s),
    "s_over_max": ("s / max(s, q)", lambda s, q: s / max(s, q)),
    "q_over_max": ("q / max(s, q)", lambda s, q: q / max(s, q)),
    "min_over_max": ("min(s, q) / max(s, q)", lambda s, q: min(s, q) / max(s, q)),
}
CONSISTENT_RADAR = {  # both variants, the better of the two = 1
    "lower": ("min(s, q) / value", lambda value, s, q: min(s, q) / value),
    "higher": ("value / max(s, q)", lambda value, s, q: value / max(s, q)),
}


@dataclass(frozen=True)
class Comparison:
    name: str
    formula: str              # a key of FORMULAS
    a: tuple[str, str]        # (scope, metric)
    b: tuple[str, str]
    meaning: str              # what the number says, in words

    def inputs(self) -> list[tuple[str, str]]:
        return [self.a, self.b]

    @property
    def unit(self) -> str:
        return UNITS[self.formula]

    @property
    def method(self) -> str:
        return (f"{self.meaning[0].upper()}{self.meaning[1:]}: {FORMULAS[self.formula][0]}, a = {'/'.join(self.a)}, "
                f"b = {'/'.join(self.b)}.")

    @classmethod
    def from_data(cls, data: dict) -> "Comparison":
        """From the catalogue's entry (a, b as "scope/metric") or a rule param (asdict: a, b as pairs)."""
        if data["formula"] not in FORMULAS:
            raise ValueError(f"comparison {data['name']}: unknown formula {data['formula']!r} (known: {sorted(FORMULAS)})")
        return cls(data["name"], data["formula"], metric_key(data["a"]), metric_key(data["b"]), data["meaning"])


@dataclass(frozen=True)
class RadarPoint:
    """One point of Figure 2: a variant's value on one axis under one normalization."""
    name: str                 # comparison/<name>.json
    normalization: str        # paper | consistent
    variant: str              # full | qlora
    axis: str
    s: tuple[str, str]        # standard's metric file on this axis, under this normalization
    q: tuple[str, str]        # QLoRA's
    formula: str              # a key of PAPER_RADAR (paper) or CONSISTENT_RADAR (consistent: lower | higher)

    def inputs(self) -> list[tuple[str, str]]:
        return [self.s, self.q]

    @property
    def formula_text(self) -> str:
        return (PAPER_RADAR if self.normalization == "paper" else CONSISTENT_RADAR)[self.formula][0]

    @property
    def method(self) -> str:
        source = "the paper" if self.normalization == "paper" else "consistent"
        return (f"Figure 2, {source} normalization, {self.variant} on the {self.axis.replace('_', ' ')} axis: "
                f"{self.formula_text} with s = {'/'.join(self.s)}, q = {'/'.join(self.q)}.")

    def value(self, s: float, q: float) -> float:
        if self.normalization == "paper":
            return PAPER_RADAR[self.formula][1](s, q)
        return CONSISTENT_RADAR[self.formula][1](s if self.variant == "full" else q, s, q)


def radar_name(normalization: str, variant: str, axis: str) -> str:
    return f"radar_{normalization}_{variant}_{axis}"


def radar_points(radar: dict) -> list[RadarPoint]:
    """Every Figure 2 point the catalogue's radar section defines: QLoRA's under the paper's normalization (standard
    is the constant radar.paper_standard there), both variants under the consistent one."""
    points = []
    for normalization, variants in (("paper", ("qlora",)), ("consistent", ("full", "qlora"))):
        for variant in variants:
            for axis in radar["axes"]:
                spec = axis[normalization]
                formula = spec["formula"] if normalization == "paper" else axis["better"]
                if formula not in (PAPER_RADAR if normalization == "paper" else CONSISTENT_RADAR):
                    raise ValueError(f"radar axis {axis['axis']}: unknown {normalization} formula {formula!r}")
                points.append(RadarPoint(radar_name(normalization, variant, axis["axis"]), normalization, variant,
                                         axis["axis"], metric_key(spec["s"]), metric_key(spec["q"]), formula))
    return points


def comparison_records(m: MetricStore, comparisons: list[Comparison], points: list[RadarPoint],
                       audits: dict[str, dict] | None = None, level: float = 0.95) -> dict[str, dict]:
    """{name: value, inputs and details} of each comparison and radar point, from the metric files in m.

    Its interval: with several training seeds (an input carries `seeds`), the t interval of the seed-paired values of
    the formula (seed_comparison), a perplexity comparison's test-set bootstrap then in details.test_set_interval;
    with one seed, the bootstrap interval of the formula: paired for perplexities (details.bootstrap; their audit
    files, path -> content, in `audits`); for two medians whose samples their files carry, paired by round where one
    job timed both in interleaved rounds (inference runs), unpaired for separate runs (step times)."""
    out = {}
    for c in comparisons:
        text, fn = FORMULAS[c.formula]
        a, b = m.value(*c.a), m.value(*c.b)
        record = out[c.name] = dict(value=fn(a, b), inputs=[m.paths[c.a], m.paths[c.b]],
                                    details={"formula": text, "a": {"metric": "/".join(c.a), "value": a},
                                             "b": {"metric": "/".join(c.b), "value": b}})
        seeded = seeds.seed_comparison(m.record(*c.a), m.record(*c.b), fn, level)
        paired = paired_interval(m.record(*c.a), m.record(*c.b), fn, audits or {})
        by_window = paired_interval(m.record(*c.a), m.record(*c.b), fn, audits or {}, "bootstrap_by_window")
        if by_window:  # the interval that takes the windows as independent, beside the one by article
            record["details"]["interval_by_window"] = by_window[0]
        if paired:
            record["inputs"] += paired[1]
        if seeded:
            record["seeds"], seed_interval = seeded
            record["value"] = record["seeds"]["mean"]  # the centre of its sd and interval (write_metrics says so)
            record["details"]["formula_of_the_means"] = fn(a, b)  # a and b above are the seeds' means
            if seed_interval:
                record["interval"] = seed_interval
            if paired:
                record["details"]["test_set_interval"] = paired[0]
        elif paired:
            record["interval"] = paired[0]
        else:
            unpaired = median_interval(m.record(*c.a), m.record(*c.b), fn)
            if unpaired:
                record["interval"] = unpaired
    for point in points:
        s, q = m.value(*point.s), m.value(*point.q)
        out[point.name] = dict(value=point.value(s, q), inputs=[m.paths[point.s], m.paths[point.q]],
                               details={"formula": point.formula_text, "s": s, "q": q})
    return mark_contaminated(out, {m.paths[k]: record for k, record in m.records.items()})


def mark_contaminated(records: dict[str, dict], read: dict[str, dict]) -> dict[str, dict]:
    """A derived value is contaminated when any file it read is (`contaminated` in the file: every attempt of a
    timing observed outside load): such a record gets contaminated=True and the files in
    details.contaminated_inputs. read maps each path a record may name in its inputs to that file's content."""
    for record in records.values():
        tainted = sorted({str(path) for path in record["inputs"] if read.get(str(path), {}).get("contaminated")})
        if tainted:
            record["contaminated"] = True
            record["details"] = {**record.get("details", {}), "contaminated_inputs": tainted}
    return records


def audit_files(boot: dict) -> list[str]:
    """The audit files a perplexity's bootstrap record names: its run's, or each training seed's (an aggregate)."""
    return boot["audits"] if "audits" in boot else [boot["audit"]]


def paired_interval(a: dict, b: dict, fn, audits: dict[str, dict],
                    bootstrap_key: str = "bootstrap") -> tuple[dict, list[str]] | None:
    """The bootstrap interval of fn(a, b) with both perplexities recomputed on the same resamples (uncertainty.py),
    and the audit files it read; None unless both records were bootstrapped the same way (details[bootstrap_key])
    and their audits given.
    An aggregate over training seeds names each seed's audit: a replicate's value is then the mean over the seeds
    of the formula applied to each seed's pair (a model that is not trained, the base, pairs with every seed)."""
    boot_a, boot_b = (r.get("details", {}).get(bootstrap_key) for r in (a, b))
    if not boot_a or not boot_b or "protocol" not in boot_a or "protocol" not in boot_b \
            or any(path not in audits for boot in (boot_a, boot_b) for path in audit_files(boot)):
        return None
    same = ("protocol", "unit", "units", "replicates", "seed", "level")
    if any(boot_a[k] != boot_b[k] for k in same):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']} were not resampled alike: "
                         f"{ {k: boot_a[k] for k in same} } vs { {k: boot_b[k] for k in same} }")
    files_a, files_b = audit_files(boot_a), audit_files(boot_b)
    if len(files_a) > 1 and len(files_b) > 1 and len(files_a) != len(files_b):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']} come from different seed counts")
    units = {path: audits[path][boot_a["protocol"]]["tokens"] for path in files_a + files_b}
    if any(tokens != units[files_a[0]] for tokens in units.values()):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']}: the audits' units differ (other "
                         f"windows or rows; scored tokens {sorted({sum(t) for t in units.values()})} in "
                         f"{sorted({len(t) for t in units.values()})} units): nothing to pair")
    indices = uncertainty.resample_indices(boot_a["units"], boot_a["replicates"], boot_a["seed"])
    replicates = [np.stack([uncertainty.perplexity_replicates(audits[path][boot["protocol"]]["nll"],
                                                              audits[path][boot["protocol"]]["tokens"], indices)
                            for path in files])
                  for boot, files in ((boot_a, files_a), (boot_b, files_b))]
    low, high = uncertainty.percentile_interval(fn(*replicates).mean(axis=0), boot_a["level"])
    method = uncertainty.method_text(boot_a["unit"], boot_a["units"], boot_a["replicates"], boot_a["seed"], paired=True,
                                     scored=boot_a.get("scored", "of the test split"))
    seeds = max(len(files_a), len(files_b))
    if seeds > 1:
        method += f"; each resample's value is the mean over the {seeds} training seeds of the seed-paired values"
    return uncertainty.interval(low, high, boot_a["level"], method), sorted(set(files_a + files_b))


def median_interval(a: dict, b: dict, fn) -> dict | None:
    """The bootstrap interval of fn(a, b) for two medians whose samples their files carry (details.bootstrap.samples):
    paired round by round where both were timed in the same rounds of one job (bootstrap.groups, the same
    bootstrap.pairing), each resampled on its own otherwise (separate runs); None unless both are such medians."""
    boot_a, boot_b = (r.get("details", {}).get("bootstrap") for r in (a, b))
    if not boot_a or not boot_b or boot_a.get("statistic") != "median" or boot_b.get("statistic") != "median":
        return None
    same = ("replicates", "seed", "level", "unit")
    if any(boot_a[k] != boot_b[k] for k in same):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']} were not resampled alike")
    samples_a, samples_b = a["details"][boot_a["samples"]], b["details"][boot_b["samples"]]
    if boot_a.get("groups") and boot_b.get("groups"):
        return round_paired_interval(a, b, fn)
    schemes = tuple({"block": boot.get("block", 1),
                     "strata": record["details"][boot["strata"]] if boot.get("strata") else None,
                     "groups": record["details"][boot["groups"]] if boot.get("groups") else None}
                    for boot, record in ((boot_a, a), (boot_b, b)))
    low, high = uncertainty.independent_interval(samples_a, samples_b, fn, boot_a["replicates"], boot_a["seed"],
                                                 boot_a["level"], schemes)
    method = (f"bootstrap of the two medians, unpaired: the {len(samples_a)} and {len(samples_b)} {boot_a['unit']}s of "
              f"the two jobs, each job's resampled on its own, the way its own interval resamples them "
              f"({'; '.join(_scheme_text(boot) for boot in (boot_a, boot_b))}), {boot_a['replicates']} resamples, seed "
              f"{boot_a['seed']}; the formula applied to each pair of resampled medians; within-run noise only")
    return uncertainty.interval(low, high, boot_a["level"], method)


def round_paired_interval(a: dict, b: dict, fn) -> dict:
    """fn(a, b) for two medians timed in the same rounds of one job, both resampled by the same drawn rounds
    (uncertainty.paired_median_interval). Two round-timed medians of different jobs cannot be paired: refused."""
    boot_a, boot_b = a["details"]["bootstrap"], b["details"]["bootstrap"]
    if boot_a["pairing"] != boot_b["pairing"] or not boot_a["pairing"]:
        raise ValueError(f"{a['scope']}/{a['metric']} ({boot_a['pairing']}) and {b['scope']}/{b['metric']} "
                         f"({boot_b['pairing']}) were timed in rounds of different jobs: their rounds cannot be paired; "
                         "time both models in one job")
    samples_a, samples_b = a["details"][boot_a["samples"]], b["details"][boot_b["samples"]]
    rounds_a, rounds_b = a["details"][boot_a["groups"]], b["details"][boot_b["groups"]]
    low, high = uncertainty.paired_median_interval(samples_a, rounds_a, samples_b, rounds_b, fn, boot_a["replicates"],
                                                   boot_a["seed"], boot_a["level"])
    rounds = len(set(rounds_a))
    method = (f"bootstrap of the two medians, paired by round: both models were timed in the same {rounds} rounds of "
              f"one job ({boot_a['pairing']}); each resample draws {rounds} rounds with replacement and takes both "
              f"models' {boot_a['unit']}s in them ({len(samples_a)} and {len(samples_b)} in all), "
              f"{boot_a['replicates']} resamples, seed {boot_a['seed']}; the formula applied to each pair of resampled "
              f"medians; {uncertainty.ROUND_NOISE}")
    return uncertainty.interval(low, high, boot_a["level"], method)


def _scheme_text(boot: dict) -> str:
    """How one median's samples are resampled (its details.bootstrap record), in words."""
    if boot.get("groups"):
        return f"whole groups of details.{boot['groups']}"
    if boot.get("block", 1) > 1:
        return f"circular blocks of {boot['block']}"
    return f"within each group of details.{boot['strata']}" if boot.get("strata") else "independently"
