"""Derived comparisons, computed once from the metric files and written as files of their own
(results/metrics/comparison/<name>.json). Tables, prose, Figure 2 and the claims read these files;
none of them computes a ratio.

Each comparison is data: a name, a formula kind and the two metric files it combines. The formula kinds
are the paper's own (PROTOCOL.md, Table 12 "Improvement"):
  ratio      a / b
  reduction  100 x (1 - a / b)     the paper's "x% fewer/smaller/less", and its (s - q) / s for times
  change     100 x (a / b - 1)     the paper's (q - s) / s for tokens/s and perplexity, and "x% longer"
  points     a - b                 MFU, in percentage points
"""
from __future__ import annotations

from dataclasses import dataclass

from qrepro.report.store import MetricStore

FORMULAS = {
    "ratio": ("a / b", lambda a, b: a / b),
    "reduction": ("100 x (1 - a / b)", lambda a, b: 100 * (1 - a / b)),
    "change": ("100 x (a / b - 1)", lambda a, b: 100 * (a / b - 1)),
    "points": ("a - b", lambda a, b: a - b),
}
UNITS = {"ratio": "x", "reduction": "%", "change": "%", "points": "percentage points"}


@dataclass(frozen=True)
class Comparison:
    name: str
    kind: str                 # a key of FORMULAS
    a: tuple[str, str]        # (scope, metric)
    b: tuple[str, str]
    meaning: str              # what the number says, in words

    def inputs(self) -> list[tuple[str, str]]:
        return [self.a, self.b]

    @classmethod
    def from_data(cls, data: dict) -> "Comparison":
        """From the catalogue's entry (a, b as "scope/metric") or a rule param (asdict: a, b as pairs)."""
        key = lambda ref: tuple(ref.split("/") if isinstance(ref, str) else ref)  # noqa: E731
        return cls(data["name"], data["kind"], key(data["a"]), key(data["b"]), data["meaning"])


# Figure 2: the paper's radar (QLoRA only; Standard is the constant 0.5) and a consistent one (best = 1).
RADAR_AXES = ["memory", "training_speed", "parameter_efficiency", "quality", "inference_speed", "mfu"]
RADAR_LABELS = ["Memory", "Training speed", "Parameter efficiency", "Quality", "Inference speed", "MFU"]
RADAR_PAPER_STANDARD = 0.5  # the paper draws Standard FT as 0.5 on every axis (PROTOCOL.md)
RADAR_INPUTS = {  # axis -> (metric in the paper's radar, metric in the consistent radar), per variant scope
    "memory": (("structure", "size_fp16_mb_paper", "size_qlora_total_mb_paper"), "model_size_memory_mb"),
    "training_speed": ("train_time_s", "step_time_s"),
    "parameter_efficiency": ("trainable_params", "trainable_params"),
    "quality": ("perplexity_paper", "perplexity_token"),
    "inference_speed": ("tokens_per_s", "tokens_per_s"),
    "mfu": ("mfu_paper", "mfu_analytic"),
}
LOWER_IS_BETTER = {"memory", "training_speed", "parameter_efficiency", "quality"}


def paper_radar(s: dict, q: dict) -> dict[str, tuple[float, str]]:
    """QLoRA's point on each axis of the paper's radar (PROTOCOL.md), with the formula as text."""
    return {
        "memory": (1 - q["memory"] / s["memory"], "1 - q / s"),
        "training_speed": (s["training_speed"] / max(s["training_speed"], q["training_speed"]), "s / max(s, q)"),
        "parameter_efficiency": (1 - q["parameter_efficiency"] / s["parameter_efficiency"], "1 - q / s"),
        "quality": (min(s["quality"], q["quality"]) / max(s["quality"], q["quality"]), "min(s, q) / max(s, q)"),
        "inference_speed": (q["inference_speed"] / max(s["inference_speed"], q["inference_speed"]), "q / max(s, q)"),
        "mfu": (q["mfu"] / max(s["mfu"], q["mfu"]), "q / max(s, q)"),
    }


def consistent_radar(s: dict, q: dict) -> dict[str, dict[str, tuple[float, str]]]:
    """Both variants scaled the same way: the better of the two is 1 on every axis (lower-is-better axes use
    best / value, higher-is-better ones value / best)."""
    out = {"full": {}, "qlora": {}}
    for axis in RADAR_AXES:
        if axis in LOWER_IS_BETTER:
            best = min(s[axis], q[axis])
            out["full"][axis], out["qlora"][axis] = (best / s[axis], "min(s, q) / value"), (best / q[axis], "min(s, q) / value")
        else:
            best = max(s[axis], q[axis])
            out["full"][axis], out["qlora"][axis] = (s[axis] / best, "value / max(s, q)"), (q[axis] / best, "value / max(s, q)")
    return out


def radar_name(method: str, variant: str, axis: str) -> str:
    """The comparison file of one Figure 2 point: method paper|consistent, variant full|qlora."""
    return f"radar_{method}_{variant}_{axis}"


def radar_sources(method: str) -> dict[str, dict[str, tuple[str, str]]]:
    """(scope, metric) per axis and variant for the paper's radar ('paper') or the consistent one."""
    index = 0 if method == "paper" else 1
    sources = {"full": {}, "qlora": {}}
    for axis, choices in RADAR_INPUTS.items():
        choice = choices[index]
        if isinstance(choice, tuple):
            scope, full_metric, qlora_metric = choice
            sources["full"][axis], sources["qlora"][axis] = (scope, full_metric), (scope, qlora_metric)
        else:
            sources["full"][axis], sources["qlora"][axis] = ("full", choice), ("qlora", choice)
    return sources


def comparison_unit(c: Comparison) -> str:
    return UNITS[c.kind]


def comparison_method(c: Comparison) -> str:
    return f"{c.meaning[0].upper()}{c.meaning[1:]}: {FORMULAS[c.kind][0]}, a = {'/'.join(c.a)}, b = {'/'.join(c.b)}."


def radar_specs() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, method, the (scope, metric) pairs it reads) of every Figure 2 value."""
    specs = []
    for method in ("paper", "consistent"):
        sources = radar_sources(method)
        every_input = sorted({key for per_axis in sources.values() for key in per_axis.values()})
        for variant in (("qlora",) if method == "paper" else ("full", "qlora")):
            for axis in RADAR_AXES:
                s, q = sources["full"][axis], sources["qlora"][axis]
                specs.append((radar_name(method, variant, axis),
                              f"Figure 2, {'the paper' if method == 'paper' else 'consistent'} normalization, "
                              f"{variant} on the {axis.replace('_', ' ')} axis: {{{{ formula }}}} with "
                              f"s = {'/'.join(s)}, q = {'/'.join(q)}.", every_input))
    return specs


def records(m: MetricStore, comparisons: list[Comparison], radar: bool) -> dict[str, dict]:
    """{name: value, inputs and details} of each comparison (and, with radar, the Figure 2 values)."""
    out = {}
    for c in comparisons:
        text, fn = FORMULAS[c.kind]
        a, b = m.value(*c.a), m.value(*c.b)
        out[c.name] = dict(value=fn(a, b), inputs=[m.paths[c.a], m.paths[c.b]],
                           details={"formula": text, "a": {"metric": "/".join(c.a), "value": a},
                                    "b": {"metric": "/".join(c.b), "value": b}})
    if not radar:
        return out
    for method in ("paper", "consistent"):
        sources = radar_sources(method)
        values = {v: {axis: m.value(*key) for axis, key in sources[v].items()} for v in ("full", "qlora")}
        if method == "paper":
            points = {"qlora": paper_radar(values["full"], values["qlora"])}
        else:
            points = consistent_radar(values["full"], values["qlora"])
        for variant, per_axis in points.items():
            for axis, (value, text) in per_axis.items():
                keys = [sources["full"][axis], sources["qlora"][axis]]
                out[radar_name(method, variant, axis)] = dict(
                    value=value, inputs=[m.paths[k] for k in keys], method_fields={"formula": text},
                    details={"formula": text, "s": values["full"][axis], "q": values["qlora"][axis]})
    return out
