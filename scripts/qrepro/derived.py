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

from qrepro import uncertainty
from qrepro.metrics_io import MetricStore

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


def key(ref) -> tuple[str, str]:
    """(scope, metric) from "scope/metric" or an already split pair."""
    return tuple(ref.split("/")) if isinstance(ref, str) else tuple(ref)


@dataclass(frozen=True)
class Comparison:
    name: str
    kind: str                 # a key of FORMULAS
    a: tuple[str, str]        # (scope, metric)
    b: tuple[str, str]
    meaning: str              # what the number says, in words

    def inputs(self) -> list[tuple[str, str]]:
        return [self.a, self.b]

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def method(self) -> str:
        return (f"{self.meaning[0].upper()}{self.meaning[1:]}: {FORMULAS[self.kind][0]}, a = {'/'.join(self.a)}, "
                f"b = {'/'.join(self.b)}.")

    @classmethod
    def from_data(cls, data: dict) -> "Comparison":
        """From the catalogue's entry (a, b as "scope/metric") or a rule param (asdict: a, b as pairs)."""
        if data["kind"] not in FORMULAS:
            raise ValueError(f"comparison {data['name']}: unknown kind {data['kind']!r} (known: {sorted(FORMULAS)})")
        return cls(data["name"], data["kind"], key(data["a"]), key(data["b"]), data["meaning"])


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
                                         axis["axis"], key(spec["s"]), key(spec["q"]), formula))
    return points


def comparison_records(m: MetricStore, comparisons: list[Comparison], points: list[RadarPoint],
                       audits: dict[str, dict] | None = None) -> dict[str, dict]:
    """{name: value, inputs and details} of each comparison and radar point, from the metric files in m. A
    comparison of two bootstrapped values gets the bootstrap interval of its formula: paired for perplexities
    (details.bootstrap; their audit files, path -> content, in `audits`), unpaired for two medians of separate runs
    whose samples their files carry (step times, inference runs)."""
    out = {}
    for c in comparisons:
        text, fn = FORMULAS[c.kind]
        a, b = m.value(*c.a), m.value(*c.b)
        out[c.name] = dict(value=fn(a, b), inputs=[m.paths[c.a], m.paths[c.b]],
                           details={"formula": text, "a": {"metric": "/".join(c.a), "value": a},
                                    "b": {"metric": "/".join(c.b), "value": b}})
        paired = paired_interval(m.record(*c.a), m.record(*c.b), fn, audits or {})
        if paired:
            out[c.name]["interval"], audit_files = paired
            out[c.name]["inputs"] += audit_files
        else:
            unpaired = median_interval(m.record(*c.a), m.record(*c.b), fn)
            if unpaired:
                out[c.name]["interval"] = unpaired
    for point in points:
        s, q = m.value(*point.s), m.value(*point.q)
        out[point.name] = dict(value=point.value(s, q), inputs=[m.paths[point.s], m.paths[point.q]],
                               details={"formula": point.formula_text, "s": s, "q": q})
    return out


def paired_interval(a: dict, b: dict, fn, audits: dict[str, dict]) -> tuple[dict, list[str]] | None:
    """The bootstrap interval of fn(a, b) with both perplexities recomputed on the same resamples (uncertainty.py),
    and the audit files it read; None unless both records were bootstrapped the same way and their audits given."""
    boot_a, boot_b = (r.get("details", {}).get("bootstrap") for r in (a, b))
    if not boot_a or not boot_b or "audit" not in boot_a or "audit" not in boot_b \
            or boot_a["audit"] not in audits or boot_b["audit"] not in audits:
        return None
    same = ("protocol", "unit", "units", "replicates", "seed", "level")
    if any(boot_a[k] != boot_b[k] for k in same):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']} were not resampled alike: "
                         f"{ {k: boot_a[k] for k in same} } vs { {k: boot_b[k] for k in same} }")
    indices = uncertainty.resample_indices(boot_a["units"], boot_a["replicates"], boot_a["seed"])
    replicates = [uncertainty.perplexity_replicates(audits[boot["audit"]][boot["protocol"]]["nll"],
                                                    audits[boot["audit"]][boot["protocol"]]["tokens"], indices)
                  for boot in (boot_a, boot_b)]
    low, high = uncertainty.percentile_interval(fn(*replicates), boot_a["level"])
    method = uncertainty.method_text(boot_a["unit"], boot_a["units"], boot_a["replicates"], boot_a["seed"], paired=True)
    return uncertainty.interval(low, high, boot_a["level"], method), [boot_a["audit"], boot_b["audit"]]


def median_interval(a: dict, b: dict, fn) -> dict | None:
    """The bootstrap interval of fn(a, b) for two medians of separate runs, each resampled on its own from the
    samples its file carries (details.bootstrap.samples); None unless both are such medians."""
    boot_a, boot_b = (r.get("details", {}).get("bootstrap") for r in (a, b))
    if not boot_a or not boot_b or boot_a.get("statistic") != "median" or boot_b.get("statistic") != "median":
        return None
    same = ("replicates", "seed", "level", "unit")
    if any(boot_a[k] != boot_b[k] for k in same):
        raise ValueError(f"{a['scope']}/{a['metric']} and {b['scope']}/{b['metric']} were not resampled alike")
    samples_a, samples_b = a["details"][boot_a["samples"]], b["details"][boot_b["samples"]]
    low, high = uncertainty.independent_interval(samples_a, samples_b, fn, boot_a["replicates"], boot_a["seed"],
                                                 boot_a["level"])
    method = (f"percentile bootstrap of the two medians, unpaired: the {len(samples_a)} and {len(samples_b)} "
              f"{boot_a['unit']}s of the two runs each resampled on their own, {boot_a['replicates']} resamples, "
              f"seed {boot_a['seed']}; the formula applied to each pair of resampled medians")
    return uncertainty.interval(low, high, boot_a["level"], method)
