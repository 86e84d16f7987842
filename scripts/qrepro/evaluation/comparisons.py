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


S, PS, PA = "structure", "paper_structure", "paper_architecture"


def _pair(name, kind, metric_a, metric_b, meaning, scope_a="qlora", scope_b="full"):
    return Comparison(name, kind, (scope_a, metric_a), (scope_b, metric_b), meaning)


COMPARISONS: list[Comparison] = [
    # Table 5 and the compression claim, every way it can be computed
    Comparison("compression_ratio_paper_formula", "ratio", (S, "size_fp16_mb_paper"), (S, "size_qlora_total_mb_paper"),
               "fp16 size / QLoRA size, both by the paper's formula, at this run's architecture"),
    Comparison("compression_ratio_bnb_layout", "ratio", (S, "size_fp16_mb_paper"), (S, "size_qlora_bnb_mb"),
               "fp16 size / what a loaded QLoRA model holds (bitsandbytes' NF4 layout, fp32 LoRA), this run's architecture"),
    Comparison("compression_ratio_memory", "ratio", ("full", "model_size_memory_mb"), ("qlora", "model_size_memory_mb"),
               "measured bytes in memory, 16-bit model / NF4 base plus adapters as loaded"),
    Comparison("compression_ratio_disk", "ratio", ("full", "model_size_disk_mb"), ("qlora", "model_size_disk_mb"),
               "measured bytes on disk, 16-bit model / NF4 base plus adapter file"),
    Comparison("size_reduction_percent_paper_formula", "reduction", (S, "size_qlora_total_mb_paper"),
               (S, "size_fp16_mb_paper"), "how much smaller QLoRA is by the paper's formula"),
    Comparison("size_reduction_percent_memory", "reduction", ("qlora", "model_size_memory_mb"),
               ("full", "model_size_memory_mb"), "how much smaller QLoRA is in memory, measured"),
    Comparison("paper_arch_compression_ratio_paper_formula", "ratio", (PS, "size_fp16_mb_paper"),
               (PS, "size_qlora_total_mb_paper"), "the paper's formula at TinyLlama-1.1B's architecture"),
    Comparison("paper_arch_compression_ratio_bnb_layout", "ratio", (PS, "size_fp16_mb_paper"), (PS, "size_qlora_bnb_mb"),
               "what a loaded QLoRA TinyLlama-1.1B holds (NF4 with constants, 16-bit embeddings and head, fp32 LoRA)"),
    Comparison("paper_arch_compression_ratio_notebook", "ratio", (PS, "size_fp16_mb_paper"),
               (PS, "size_qlora_mb_notebook"), "the paper's notebook's own measurement (1010.48 MB) for TinyLlama-1.1B"),
    Comparison("paper_arch_size_reduction_percent_paper_formula", "reduction", (PS, "size_qlora_total_mb_paper"),
               (PS, "size_fp16_mb_paper"), "the paper's formula at TinyLlama-1.1B's architecture"),
    # Table 6
    _pair("trainable_reduction_percent", "reduction", "trainable_params", "trainable_params",
          "how many fewer parameters QLoRA trains in this run"),
    Comparison("paper_arch_trainable_reduction_percent", "reduction", (PS, "lora_trainable_params"),
               (PA, "total_params"), "how many fewer parameters QLoRA trains at TinyLlama-1.1B's architecture"),
    # Table 7
    Comparison("flops_reduction_percent_paper_formula", "reduction", (S, "flops_per_step_qlora_paper"),
               (S, "flops_per_step_full_paper"), "the paper's formula (hard-coded batch, assumed 0.25 factor)"),
    _pair("flops_reduction_percent_analytic", "reduction", "flops_per_step_analytic", "flops_per_step_analytic",
          "model FLOPs per optimizer step (PaLM), this run"),
    _pair("flops_reduction_percent_counted", "reduction", "flops_per_step_counted", "flops_per_step_counted",
          "FLOPs counted by FlopCounterMode over one real step, recomputation included"),
    Comparison("paper_arch_flops_reduction_percent_paper_formula", "reduction", (PS, "flops_per_step_qlora_paper"),
               (PS, "flops_per_step_full_paper"), "the paper's formula at TinyLlama-1.1B's architecture"),
    Comparison("paper_arch_flops_ratio_paper_formula", "ratio", (PS, "flops_per_step_full_paper"),
               (PS, "flops_per_step_qlora_paper"), "standard's FLOPs / QLoRA's by the paper's formula, TinyLlama-1.1B"),
    Comparison("paper_arch_flops_reduction_percent_analytic", "reduction", (PS, "flops_per_token_qlora_analytic"),
               (PS, "flops_per_token_full_analytic"), "model FLOPs per token (PaLM) at TinyLlama-1.1B's architecture"),
    Comparison("flops_counted_over_executed_full", "ratio", ("full", "flops_per_step_counted"),
               ("full", "flops_per_step_executed"), "counted / analytic executed FLOPs, standard fine-tuning (1 = agree)"),
    Comparison("flops_counted_over_executed_qlora", "ratio", ("qlora", "flops_per_step_counted"),
               ("qlora", "flops_per_step_executed"), "counted / analytic executed FLOPs, QLoRA (1 = agree)"),
    # Table 8
    _pair("mfu_difference_points_paper", "points", "mfu_paper", "mfu_paper",
          "QLoRA's MFU minus standard's, paper protocol (Table 12)"),
    _pair("mfu_difference_points_analytic", "points", "mfu_analytic", "mfu_analytic",
          "QLoRA's MFU minus standard's, model FLOPs over the median step"),
    _pair("mfu_ratio_paper", "ratio", "mfu_paper", "mfu_paper", "standard's MFU / QLoRA's, paper protocol",
          scope_a="full", scope_b="qlora"),
    _pair("mfu_ratio_analytic", "ratio", "mfu_analytic", "mfu_analytic",
          "standard's MFU / QLoRA's, model FLOPs over the median step", scope_a="full", scope_b="qlora"),
    # Table 9
    _pair("training_slowdown_percent_total", "change", "train_time_s", "train_time_s",
          "how much longer QLoRA's training took, wall clock with evaluation and saves (paper protocol)"),
    _pair("training_slowdown_percent_per_step", "change", "step_time_s", "step_time_s",
          "how much longer QLoRA's median optimizer step took (no evaluation or saves)"),
    _pair("training_time_improvement_percent", "reduction", "train_time_s", "train_time_s",
          "the paper's 'relative performance' (s - q) / s of the training time (Tables 9 and 12)"),
    _pair("peak_memory_ratio", "ratio", "peak_train_memory_mb", "peak_train_memory_mb",
          "standard's peak training memory / QLoRA's", scope_a="full", scope_b="qlora"),
    # Table 10
    _pair("perplexity_change_percent_paper", "change", "perplexity_paper", "perplexity_paper",
          "QLoRA's perplexity relative to standard's, paper protocol (positive: QLoRA worse)"),
    _pair("perplexity_change_percent_token", "change", "perplexity_token", "perplexity_token",
          "QLoRA's perplexity relative to standard's, token-level (positive: QLoRA worse)"),
    # Table 11
    _pair("inference_slowdown_x", "ratio", "inference_time_s", "inference_time_s",
          "QLoRA (4-bit base + adapter) generation time / standard's"),
    Comparison("inference_slowdown_merged_x", "ratio", ("qlora_merged", "inference_time_s"), ("full", "inference_time_s"),
               "QLoRA merged into 16 bit, generation time / standard's"),
    _pair("inference_time_improvement_percent", "reduction", "inference_time_s", "inference_time_s",
          "the paper's (s - q) / s of the generation time (Table 12)"),
    _pair("tokens_per_s_change_percent", "change", "tokens_per_s", "tokens_per_s",
          "the paper's (q - s) / s of the generation rate (Table 12)"),
    Comparison("tokens_per_s_merged_over_full", "ratio", ("qlora_merged", "tokens_per_s"), ("full", "tokens_per_s"),
               "QLoRA merged generation rate / standard's"),
]

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


ARCHITECTURE_SCOPES = {"architecture", "structure", "paper_architecture", "paper_structure"}


def _group(architecture_only: bool) -> list[Comparison]:
    """Comparisons computed from the architecture alone (the structure target, no weights) or from a run."""
    return [c for c in COMPARISONS
            if all(scope in ARCHITECTURE_SCOPES for scope, _ in c.inputs()) == architecture_only]


def required_metrics(architecture_only: bool) -> set[tuple[str, str]]:
    """Every (scope, metric) one group of comparisons reads."""
    needed = {key for c in _group(architecture_only) for key in c.inputs()}
    if not architecture_only:
        for method in ("paper", "consistent"):
            for per_axis in radar_sources(method).values():
                needed |= set(per_axis.values())
    return needed


def names(architecture_only: bool) -> list[str]:
    if architecture_only:
        return [c.name for c in _group(True)]
    paper = [f"radar_paper_qlora_{axis}" for axis in RADAR_AXES]
    consistent = [f"radar_consistent_{v}_{axis}" for v in ("full", "qlora") for axis in RADAR_AXES]
    return [c.name for c in _group(False)] + paper + consistent


def records(m: MetricStore, architecture_only: bool) -> dict[str, dict]:
    """{name: write_metric kwargs} for one group of comparisons (and, for a run, the radar values)."""
    out = {}
    for c in _group(architecture_only):
        text, fn = FORMULAS[c.kind]
        a, b = m.value(*c.a), m.value(*c.b)
        out[c.name] = dict(
            value=fn(a, b), unit=UNITS[c.kind], inputs=[m.paths[c.a], m.paths[c.b]],
            timing=m.record(*c.a)["timing"] or m.record(*c.b)["timing"],
            method=f"{c.meaning[0].upper()}{c.meaning[1:]}: {text}, a = {'/'.join(c.a)}, b = {'/'.join(c.b)}.",
            details={"formula": text, "a": {"metric": "/".join(c.a), "value": a},
                     "b": {"metric": "/".join(c.b), "value": b}})
    if architecture_only:
        return out
    for method in ("paper", "consistent"):
        sources = radar_sources(method)
        values = {v: {axis: m.value(*key) for axis, key in sources[v].items()} for v in ("full", "qlora")}
        timing = any(m.record(*key)["timing"] for per_axis in sources.values() for key in per_axis.values())
        if method == "paper":
            points = {"qlora": paper_radar(values["full"], values["qlora"])}
        else:
            points = consistent_radar(values["full"], values["qlora"])
        for variant, per_axis in points.items():
            for axis, (value, text) in per_axis.items():
                keys = [sources["full"][axis], sources["qlora"][axis]]
                out[f"radar_{method}_{variant}_{axis}"] = dict(
                    value=value, unit="", inputs=[m.paths[k] for k in keys], timing=timing,
                    method=(f"Figure 2, {'the paper' if method == 'paper' else 'consistent'} normalization, "
                            f"{variant} on the {axis.replace('_', ' ')} axis: {text} with s = {'/'.join(keys[0])}, "
                            f"q = {'/'.join(keys[1])}."),
                    details={"formula": text, "s": values["full"][axis], "q": values["qlora"][axis]})
    return out
