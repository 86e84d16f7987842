"""Verdicts on the paper's headline claims. paper/claims.yaml says what each claim is judged on and its
threshold; the judged value is a comparison file of the run that can judge it; every verdict states its basis."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from qrepro.report.placeholders import fill, fmt
from qrepro.report.store import MetricStore

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not reproduced", "not comparable"
BASIS_ARCHITECTURE = "computed from the paper's architecture (no training)"
BASIS_THIS_RUN = "measured in this run"
BASIS_REFERENCE = "measured in a GPU run at the paper's architecture"
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

    @classmethod
    def from_metrics(cls, label: str, m: MetricStore, settings: dict) -> "Run":
        device = m.record("device", "peak_flops")["details"]
        same_arch = all(m.value("architecture", k) == m.value("paper_architecture", k) for k in ARCHITECTURE_KEYS)
        return cls(label=label, metrics=m, cuda=bool(device["cuda"]), gpu=device.get("gpu"),
                   paper_architecture=same_arch, paper_recipe=bool(settings.get("paper_recipe", False)),
                   pretrained_paper_model=same_arch and settings["init"] == "pretrained"
                   and settings["model_source"] in ("hub", "local"),
                   paper_data=settings["data_source"] in ("hf", "local") and settings.get("paper_data", False))

    def describe(self) -> str:
        arch = "the paper's architecture" if self.paper_architecture else (
            f"a {fmt(self.metrics.value('architecture', 'total_params'), 'int')}-parameter stand-in model")
        recipe = "" if self.paper_recipe else " with another recipe or sequence length"
        where = f"a GPU ({self.gpu})" if self.cuda else "a CPU"
        return f"{arch}{recipe} on {where}"


def judge(claim: dict, this_run: Run, reference: Run | None) -> dict:
    """Pick the run that can judge the claim, and the verdict with its basis (or why none can)."""
    kind = claim["judged_on"]
    run, basis, reason = None, None, None
    if kind == "architecture":
        run, basis = this_run, BASIS_ARCHITECTURE
    elif kind == "gpu_paper_architecture":
        if this_run.cuda and this_run.paper_architecture and this_run.paper_recipe:
            run, basis = this_run, BASIS_THIS_RUN
        elif reference is not None and reference.cuda and reference.paper_architecture and reference.paper_recipe:
            run, basis = reference, f"{BASIS_REFERENCE} ({reference.label})"
        else:
            reason = (f"this run is {this_run.describe()}; the claim is a ratio of times or memory that needs the "
                      "paper's architecture and recipe on a GPU" + (", and no reference run is present (reference/)"
                                                                    if reference is None else
                                                                    f", which the reference run ({reference.describe()}) "
                                                                    "is not"))
    elif kind == "paper_setup":
        candidates = [(this_run, BASIS_THIS_RUN)] + ([(reference, f"{BASIS_REFERENCE} ({reference.label})")]
                                                     if reference else [])
        for candidate, candidate_basis in candidates:
            if candidate.cuda and candidate.pretrained_paper_model and candidate.paper_data:
                run, basis = candidate, candidate_basis
                break
        else:
            reason = ("perplexity depends on the trained weights and the data: it needs TinyLlama-1.1B's pretrained "
                      f"weights on WikiText-2 on a GPU, and this run is {this_run.describe()}"
                      + ("" if not reference else f"; the reference run ({reference.describe()}) has "
                         + ("random weights" if not reference.pretrained_paper_model else "other data")))
    else:
        raise ValueError(f"claim {claim['id']}: unknown judged_on {kind!r}")

    shown = run or this_run
    value = shown.metrics.value("comparison", claim["value"])
    deviation = value / claim["published"] - 1
    if run is None:
        verdict, basis = NOT_COMPARABLE, f"not comparable: {reason}"
    elif abs(deviation) <= claim["rel_tolerance"]:
        verdict = REPRODUCED
    else:
        verdict = NOT_REPRODUCED
    return {**claim, "reproduced_value": value, "deviation": deviation, "verdict": verdict, "basis": basis,
            "judged_from": shown.label, "evidence": fill(claim["evidence"], shown.metrics),
            "sources": [shown.metrics.paths[("comparison", claim["value"])]]}


def load_claims(path: str) -> list[dict]:
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    for claim in claims:
        missing = {"id", "statement", "published", "unit", "rel_tolerance", "judged_on", "value", "evidence"} - claim.keys()
        if missing:
            raise ValueError(f"{path}: claim {claim.get('id')} lacks {sorted(missing)}")
    return claims


def verdicts(claims_path: str, this_run: Run, reference: Run | None) -> list[dict]:
    """Every claim judged. A claim with `folded_into` takes the verdict of that claim: its value is shown, but
    it adds nothing the other claim's measurement does not already decide (paper/claims.yaml says why)."""
    judged = {claim["id"]: judge(claim, this_run, reference) for claim in load_claims(claims_path)}
    for verdict in judged.values():
        if verdict.get("folded_into"):
            decider = judged[verdict["folded_into"]]
            verdict["verdict"] = decider["verdict"]
            verdict["basis"] = f"folded into the claim \"{decider['statement']}\": {decider['basis']}"
    return list(judged.values())
