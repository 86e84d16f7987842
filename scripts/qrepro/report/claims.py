"""Verdicts on the paper's headline claims. paper/claims.yaml says what each claim is judged on and its
threshold; the judged value is a comparison file of the run that can judge it. Every verdict carries its basis as
facts (which run judged it, or why none could); templates/prose.j2 (claim_basis) says it in words."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from qrepro.metrics_io import MetricStore
from qrepro.report.markup import metric_title, paper_title
from qrepro.report.numbers import PaperValues
from qrepro.report.render import render_text

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not reproduced", "not comparable"
INCONCLUSIVE = "inconclusive"
# basis kinds: what judged the claim
ARCHITECTURE, THIS_RUN, REFERENCE, NONE = "architecture", "this run", "reference", "none"
ARCHITECTURE_KEYS = ("total_params", "hidden_size", "num_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "vocab_size")


@dataclass
class Run:
    """A run that can be judged from: its metric files and what it was (from its files and settings)."""
    label: str
    metrics: MetricStore
    cuda: bool
    gpu: str | None
    paper_architecture: bool
    paper_recipe: bool               # the paper's Tables 3-4 at its sequence length (configs/paper.yaml)
    pretrained_paper_model: bool     # the paper's TinyLlama weights (not random, not a small stand-in)
    paper_data: bool                 # WikiText-2 (raw), at the paper's sequence length
    random_weights: bool = False

    @classmethod
    def from_metrics(cls, label: str, m: MetricStore, settings: dict) -> "Run":
        device = m.record("device", "peak_flops")["details"]
        same_arch = all(m.value("architecture", k) == m.value("paper_architecture", k) for k in ARCHITECTURE_KEYS)
        return cls(label=label, metrics=m, cuda=bool(device["cuda"]), gpu=device.get("gpu"),
                   paper_architecture=same_arch, paper_recipe=bool(settings.get("paper_recipe", False)),
                   pretrained_paper_model=same_arch and settings["init"] == "pretrained"
                   and settings["model_source"] in ("hub", "local"),
                   paper_data=settings["data_source"] in ("hf", "local") and settings.get("paper_data", False),
                   random_weights=settings["init"] == "random")

    def facts(self) -> dict:
        """What the prose says about this run (prose.j2, run_facts)."""
        return {"label": self.label, "paper_architecture": self.paper_architecture, "paper_recipe": self.paper_recipe,
                "cuda": self.cuda, "gpu": self.gpu, "total_params": self.metrics.value("architecture", "total_params"),
                "total_params_source": str(self.metrics.paths[("architecture", "total_params")]),
                "total_params_title": metric_title(str(self.metrics.paths[("architecture", "total_params")]),
                                                   self.metrics.record("architecture", "total_params")),
                "pretrained_paper_model": self.pretrained_paper_model, "paper_data": self.paper_data,
                "random_weights": self.random_weights}


def judge(claim: dict, this_run: Run, reference: Run | None, paper: dict[str, dict] | None = None) -> dict:
    """Pick the run that can judge the claim, and the verdict with its basis (or why none can)."""
    kind = claim["judged_on"]
    run, basis = None, None
    if kind == "architecture":
        run, basis = this_run, ARCHITECTURE
    elif kind == "gpu_paper_architecture":
        if this_run.cuda and this_run.paper_architecture and this_run.paper_recipe:
            run, basis = this_run, THIS_RUN
        elif reference is not None and reference.cuda and reference.paper_architecture and reference.paper_recipe:
            run, basis = reference, REFERENCE
    elif kind == "paper_setup":
        candidates = [(this_run, THIS_RUN)] + ([(reference, REFERENCE)] if reference else [])
        for candidate, candidate_basis in candidates:
            if candidate.cuda and candidate.pretrained_paper_model and candidate.paper_data and candidate.paper_recipe:
                run, basis = candidate, candidate_basis
                break
    else:
        raise ValueError(f"claim {claim['id']}: unknown judged_on {kind!r}")

    shown = run or this_run
    record = shown.metrics.record("comparison", claim["value"])
    value, interval = record["value"], record.get("interval")
    deviation = value / claim["published"] - 1
    verdict = NOT_COMPARABLE if run is None else verdict_for(value, interval, claim["published"],
                                                               claim["rel_tolerance"])
    return {**claim, "reproduced_value": value, "reproduced_text": as_precise_as(value, claim["published_text"]),
            "interval": interval, "contaminated": bool(record.get("contaminated")),  # the report marks its value
            "deviation": deviation, "verdict": verdict,
            "basis": {"kind": basis or NONE, "needs": kind, "run": shown.label,
                      "this_run": this_run.facts(), "reference": reference.facts() if reference else None},
            "judged_from": shown.label,  # its evidence (claim["evidence"], prose language) reads this run's files
            "sources": [shown.metrics.paths[("comparison", claim["value"])]],
            "title": metric_title(shown.metrics.paths[("comparison", claim["value"])], record),
            "value_label": claim.get("value_label"),
            "shown_with": [shown_value(shown.metrics, name, label, claim["published_text"])
                           for name, label in claim.get("shown_with", {}).items()],
            "direction": [{**direction_evidence(shown.metrics, name, claim["direction"]["sign"]), "label": label}
                          for name, label in claim.get("direction", {}).get("comparisons", {}).items()]}


def shown_value(m: MetricStore, comparison: str, label: str, published_text: str) -> dict:
    """A comparison file the claims table shows beside the judged value, labelled, without judging it."""
    record = m.record("comparison", comparison)
    return {"label": label, "comparison": comparison, "value": record["value"], "unit": record["unit"],
            "text": as_precise_as(record["value"], published_text),
            "title": metric_title(m.paths[("comparison", comparison)], record),
            "interval": record.get("interval"), "source": m.paths[("comparison", comparison)]}


def direction_evidence(m: MetricStore, comparison: str, sign: str) -> dict:
    """For a directional claim (QLoRA slower, higher): whether the interval of a difference excludes "no difference"
    (0 for a change or reduction in %, 1 for a ratio) and on which side. outcome: "claimed direction", "opposite
    direction", "indistinguishable", or "no interval" (one value each: the noise is not measured)."""
    record = m.record("comparison", comparison)
    null = 1.0 if record["unit"] == "x" else 0.0
    interval = record.get("interval")
    if interval is None:
        outcome = "no interval"
    elif interval["low"] <= null <= interval["high"]:
        outcome = "indistinguishable"
    else:
        above = interval["low"] > null
        outcome = "claimed direction" if above == (sign == "positive") else "opposite direction"
    return {"comparison": comparison, "value": record["value"], "unit": record["unit"], "interval": interval,
            "null": null, "outcome": outcome, "source": m.paths[("comparison", comparison)],
            "contaminated": bool(record.get("contaminated")),
            "title": metric_title(m.paths[("comparison", comparison)], record),
            "format": f"f{distinct_decimals([interval['low'], interval['high']], null) if interval else 2}"}


def distinct_decimals(bounds: list[float], null: float, fewest: int = 2, most: int = 6) -> int:
    """Decimals enough that a bound which is not the null value does not print as it (0.99997 is not "1.00")."""
    for decimals in range(fewest, most + 1):
        if all(b == null or float(f"{b:.{decimals}f}") != null for b in bounds):  # "-0.00" reads as 0 too
            return decimals
    return most


def verdict_for(value: float, interval: dict | None, published: float, rel_tolerance: float) -> str:
    """paper/claims.yaml's rule. The band is published +- rel_tolerance x |published|. Without an interval: reproduced
    when the value lies in the band. With one: reproduced when the whole interval lies in the band, not reproduced
    when the whole interval lies outside it, inconclusive when it straddles an edge."""
    low_edge, high_edge = published - rel_tolerance * abs(published), published + rel_tolerance * abs(published)
    if interval is None:
        return REPRODUCED if low_edge <= value <= high_edge else NOT_REPRODUCED
    if low_edge <= interval["low"] and interval["high"] <= high_edge:
        return REPRODUCED
    if interval["high"] < low_edge or interval["low"] > high_edge:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def as_precise_as(value: float, published_text: str) -> str:
    """The judged value with as many decimals as the published figure, and at least three significant digits."""
    decimals = len(published_text.partition(".")[2])
    text = f"{value:.{decimals}f}"
    return text if len(text.lstrip("-0.").replace(".", "")) >= 3 else f"{value:.3g}"


def load_claims(path: str, paper: dict[str, dict]) -> list[dict]:
    """The claims with their statements filled from the paper's values and their published figure resolved:
    `published` the number, `published_text` as the paper prints it (a derived one to two decimals)."""
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    for claim in claims:
        missing = {"id", "statement", "published", "unit", "rel_tolerance", "judged_on", "value", "evidence"} - claim.keys()
        if missing:
            raise ValueError(f"{path}: claim {claim.get('id')} lacks {sorted(missing)}")
        claim["statement"] = render_text(claim["statement"], pv=PaperValues(paper))
        claim.update(published_figure(claim["published"], paper, f"{path}: claim {claim['id']}"))
    return claims


def published_figure(spec: dict, paper: dict[str, dict], where: str) -> dict:
    if "paper" in spec:
        value = paper[spec["paper"]]["value"]
        return {"published": value, "published_text": str(value), "published_derived": False,
                "published_ids": [spec["paper"]], "published_title": paper_title(paper[spec["paper"]])}
    if spec.get("derived") == "ratio" and len(spec.get("of", [])) == 2:
        a, b = (paper[key]["value"] for key in spec["of"])
        return {"published": a / b, "published_text": f"{a / b:.2f}", "published_derived": True,
                "published_ids": list(spec["of"]),
                "published_title": f"{a!r} / {b!r}: " + " / ".join(paper_title(paper[key]) for key in spec["of"])}
    raise ValueError(f"{where}: published must be {{paper: ID}} or {{derived: ratio, of: [ID, ID]}}, not {spec}")


def verdicts(claims_path: str, paper: dict[str, dict], this_run: Run, reference: Run | None) -> list[dict]:
    """Every claim judged, numbered in the order of paper/claims.yaml."""
    return [{**judge(claim, this_run, reference, paper), "number": number}
            for number, claim in enumerate(load_claims(claims_path, paper), start=1)]


def reasons(judged: list[dict]) -> list[dict]:
    """Why the claims no run could judge are not comparable, each reason once with the numbers of its claims (the
    prose writes the reason from the basis: claim_reason)."""
    groups: dict[str, dict] = {}
    for claim in judged:
        if claim["verdict"] == NOT_COMPARABLE:
            key = json.dumps(claim["basis"] | {"run": None}, sort_keys=True, default=str)
            groups.setdefault(key, {"basis": claim["basis"], "numbers": []})["numbers"].append(claim["number"])
    return list(groups.values())
