"""Derived comparisons against the paper's own printed numbers, and every verdict path with its basis."""
import itertools

import pytest
import yaml

from conftest import ROOT
from qrepro import catalogue
from qrepro.evaluation import comparisons as C
from qrepro.report.claims import (BASIS_ARCHITECTURE, BASIS_REFERENCE, BASIS_THIS_RUN, NOT_COMPARABLE, NOT_REPRODUCED,
                                  REPRODUCED, Run, judge, load_claims)
from qrepro.report.placeholders import fill
from qrepro.report.placeholders import value_placeholders as placeholders
from qrepro.report.store import MetricStore

CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")
PAPER = {e["id"]: e["value"] for e in yaml.safe_load((ROOT / "paper/paper_values.yaml").read_text())["values"]}
FORMULA = {kind: fn for kind, (_, fn) in C.FORMULAS.items()}


def test_table12_improvements_by_the_papers_formulas_from_its_own_numbers():
    """The comparison formulas, fed the paper's Tables 5-11, give the Improvement column it printed in Table 12."""
    p = PAPER
    assert FORMULA["reduction"](p["t6_trainable_qlora"], p["t6_trainable_full"]) == pytest.approx(98.85, abs=0.005)
    assert FORMULA["reduction"](p["t5_qlora_total_mb"], p["t5_fp16_mb"]) == pytest.approx(73.9, abs=0.05)
    assert FORMULA["reduction"](p["t7_flops_qlora"], p["t7_flops_full"]) == pytest.approx(73.9, abs=0.05)
    assert FORMULA["points"](p["t8_mfu_qlora"], p["t8_mfu_full"]) == pytest.approx(-10.67, abs=0.005)
    assert FORMULA["reduction"](p["t9_time_qlora"], p["t9_time_full"]) == pytest.approx(-37.3, abs=0.05)
    assert FORMULA["reduction"](p["t11_time_qlora"], p["t11_time_full"]) == pytest.approx(-212.0, abs=0.1)  # printed 3 digits
    assert FORMULA["change"](p["t11_tps_qlora"], p["t11_tps_full"]) == pytest.approx(-67.9, abs=0.05)
    # the one the paper got wrong: its formula gives +18.73 for perplexity, Table 12 prints -18.73
    assert FORMULA["change"](p["t10_ppl_qlora"], p["t10_ppl_full"]) == pytest.approx(-p["t12_ppl_improvement"], abs=0.01)
    assert FORMULA["ratio"](p["t5_fp16_mb"], p["t5_qlora_total_mb"]) == pytest.approx(3.82, abs=0.005)
    assert FORMULA["ratio"](p["t11_time_qlora"], p["t11_time_full"]) == pytest.approx(3.1, abs=0.05)


def test_the_papers_radar_from_its_own_numbers():
    """PROTOCOL.md's normalization, by hand: memory 1 - q/s, speed s/max, quality min/max, the rest q/max."""
    p = PAPER
    s = {"memory": p["t5_fp16_mb"], "training_speed": p["t9_time_full"], "parameter_efficiency": p["t6_trainable_full"],
         "quality": p["t10_ppl_full"], "inference_speed": p["t11_tps_full"], "mfu": p["t8_mfu_full"]}
    q = {"memory": p["t5_qlora_total_mb"], "training_speed": p["t9_time_qlora"],
         "parameter_efficiency": p["t6_trainable_qlora"], "quality": p["t10_ppl_qlora"],
         "inference_speed": p["t11_tps_qlora"], "mfu": p["t8_mfu_qlora"]}
    radar = {axis: value for axis, (value, _) in C.paper_radar(s, q).items()}
    expected = {"memory": 1 - 548.61 / 2098.18, "training_speed": 1441.24 / 1979.42, "parameter_efficiency": 0.98853,
                "quality": 18.42 / 21.87, "inference_speed": 10.62 / 33.12, "mfu": 2.51 / 13.18}
    assert radar == pytest.approx(expected, abs=1e-4)
    consistent = C.consistent_radar(s, q)
    for axis in C.RADAR_AXES:  # the better variant is 1 on every axis, the other below it
        values = sorted([consistent["full"][axis][0], consistent["qlora"][axis][0]])
        assert values[1] == 1.0 and 0 < values[0] <= 1.0
    assert consistent["qlora"]["training_speed"][0] == pytest.approx(1441.24 / 1979.42)
    assert consistent["full"]["memory"][0] == pytest.approx(548.61 / 2098.18)


# ---- verdicts ----

ARCH = {"total_params": 1_100_048_384, "hidden_size": 2048, "num_layers": 22, "num_attention_heads": 32,
        "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000}


def _store(comparison: dict, paper_arch: bool = True, cuda: bool = False) -> MetricStore:
    """An in-memory metric store: the given comparison values, every other metric a claim's evidence names = 1."""
    store = MetricStore()
    claims = load_claims(str(ROOT / "paper/claims.yaml"))
    needed = set(itertools.chain.from_iterable(placeholders(c["evidence"])
                                               for c in claims))
    values = {key: 1.0 for key in needed}
    values.update({("comparison", k): v for k, v in comparison.items()})
    for k, v in ARCH.items():
        values[("paper_architecture", k)] = v
        values[("architecture", k)] = v if paper_arch else v // 1000
    for (scope, name), value in values.items():
        store.records[(scope, name)] = {"value": value, "timing": False, "details": {}}
        store.paths[(scope, name)] = f"{scope}/{name}.json"
    store.records[("device", "peak_flops")] = {"value": 1.0, "details": {"cuda": cuda, "gpu": "NVIDIA H200" if cuda else None}}
    return store


SETTINGS = {"init": "pretrained", "model_source": "pretrain", "data_source": "synthetic", "paper_data": False,
            "paper_recipe": True}
CLAIMS = {c["id"]: c for c in load_claims(str(ROOT / "paper/claims.yaml"))}


def _run(label="this run", settings=SETTINGS, **kwargs):
    return Run.from_metrics(label, _store(**kwargs), settings)


def test_architecture_claims_are_judged_on_any_machine():
    cpu = _run(comparison={"paper_arch_compression_ratio_bnb_layout": 2.79, "paper_arch_trainable_reduction_percent": 98.853},
               paper_arch=False)
    compression = judge(CLAIMS["compression"], cpu, None)
    assert compression["verdict"] == NOT_REPRODUCED and compression["basis"] == BASIS_ARCHITECTURE
    assert compression["reproduced_value"] == 2.79
    trainable = judge(CLAIMS["trainable_reduction"], cpu, None)
    assert trainable["verdict"] == REPRODUCED and trainable["basis"] == BASIS_ARCHITECTURE


def test_gpu_ratio_claims_without_a_gpu_run_are_not_comparable_and_say_why():
    cpu = _run(comparison={"training_slowdown_percent_total": 37.3}, paper_arch=False)
    verdict = judge(CLAIMS["training_slowdown"], cpu, None)
    assert verdict["verdict"] == NOT_COMPARABLE
    assert "stand-in model on a CPU" in verdict["basis"] and "no reference run is present" in verdict["basis"]


def test_gpu_ratio_claims_are_judged_from_a_reference_run_then_from_this_run():
    cpu = _run(comparison={"training_slowdown_percent_total": 500.0}, paper_arch=False)
    reference = _run("h200-paper-arch", comparison={"training_slowdown_percent_total": 40.0}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], cpu, reference)
    assert verdict["verdict"] == REPRODUCED and verdict["reproduced_value"] == 40.0
    assert verdict["basis"] == f"{BASIS_REFERENCE} (h200-paper-arch)" and verdict["judged_from"] == "h200-paper-arch"
    slow = _run("h200-paper-arch", comparison={"training_slowdown_percent_total": 80.0}, cuda=True)
    assert judge(CLAIMS["training_slowdown"], cpu, slow)["verdict"] == NOT_REPRODUCED
    gpu_here = _run(comparison={"training_slowdown_percent_total": 30.0}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], gpu_here, reference)
    assert verdict["basis"] == BASIS_THIS_RUN and verdict["reproduced_value"] == 30.0 and verdict["verdict"] == REPRODUCED


def test_a_reference_run_at_another_architecture_cannot_judge():
    cpu = _run(comparison={"inference_slowdown_x": 3.1}, paper_arch=False)
    small_gpu = _run("a100-small", comparison={"inference_slowdown_x": 3.1}, paper_arch=False, cuda=True)
    verdict = judge(CLAIMS["inference_slowdown"], cpu, small_gpu)
    assert verdict["verdict"] == NOT_COMPARABLE and "which the reference run" in verdict["basis"]


def test_perplexity_needs_the_papers_weights_and_data():
    random_reference = _run("h200-paper-arch", settings={**SETTINGS, "init": "random"},
                            comparison={"perplexity_change_percent_paper": 18.7}, cuda=True)
    verdict = judge(CLAIMS["perplexity_increase"], _run(comparison={"perplexity_change_percent_paper": 1.0}),
                    random_reference)
    assert verdict["verdict"] == NOT_COMPARABLE and "random weights" in verdict["basis"]
    paper_setup = {"init": "pretrained", "model_source": "hub", "data_source": "hf", "paper_data": True,
                   "paper_recipe": True}
    real = _run(settings=paper_setup, comparison={"perplexity_change_percent_paper": 18.0}, cuda=True)
    verdict = judge(CLAIMS["perplexity_increase"], real, None)
    assert verdict["verdict"] == REPRODUCED and verdict["basis"] == BASIS_THIS_RUN


def test_every_claim_states_a_basis_and_fills_its_evidence_from_files():
    cpu = _run(comparison={c["value"]: c["published"] for c in CLAIMS.values()}, paper_arch=False)
    for claim in CLAIMS.values():
        verdict = judge(claim, cpu, None)
        assert verdict["basis"] and "{" not in verdict["evidence"]
    store = _store({"compression_ratio_memory": 0.8912})
    assert fill("measured {comparison/compression_ratio_memory|f2}x", store) == "measured 0.89x"


def test_mfu_takes_the_training_time_verdict():
    from qrepro.report.claims import verdicts
    cpu = _run(comparison={c["value"]: 1.0 for c in CLAIMS.values()}, paper_arch=False)
    # an MFU ratio inside its own tolerance, a training time outside: the clock decides both
    reference = _run("h200", comparison={**{c["value"]: 1.0 for c in CLAIMS.values()},
                                         "training_slowdown_percent_total": 20.0, "mfu_ratio_paper": 5.0}, cuda=True)
    judged = {v["id"]: v for v in verdicts(str(ROOT / "paper/claims.yaml"), cpu, reference)}
    assert judged["training_slowdown"]["verdict"] == NOT_REPRODUCED
    assert judged["mfu"]["verdict"] == NOT_REPRODUCED and judged["mfu"]["reproduced_value"] == 5.0
    assert judged["mfu"]["basis"].startswith("folded into the claim \"QLoRA training takes 37.3% longer\"")


def test_a_reference_run_with_another_recipe_cannot_judge():
    other = _run("h200-short", settings={**SETTINGS, "paper_recipe": False},
                 comparison={"training_slowdown_percent_total": 37.3}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], _run(comparison={"training_slowdown_percent_total": 1.0},
                                                      paper_arch=False), other)
    assert verdict["verdict"] == NOT_COMPARABLE and "with another recipe" in verdict["basis"]


def test_the_comparison_files_are_wired_to_the_right_inputs():
    """comparisons.records over a store holding the paper's own numbers gives its Table 12 column and headline
    ratios: swapping a and b in any definition would flip a sign or invert a ratio here."""
    p = PAPER
    values = {("full", "trainable_params"): p["t6_trainable_full"], ("qlora", "trainable_params"): p["t6_trainable_qlora"],
              ("structure", "size_fp16_mb_paper"): p["t5_fp16_mb"], ("structure", "size_qlora_total_mb_paper"): p["t5_qlora_total_mb"],
              ("structure", "flops_per_step_full_paper"): p["t7_flops_full"] * 1e12,
              ("structure", "flops_per_step_qlora_paper"): p["t7_flops_qlora"] * 1e12,
              ("full", "mfu_paper"): p["t8_mfu_full"], ("qlora", "mfu_paper"): p["t8_mfu_qlora"],
              ("full", "train_time_s"): p["t9_time_full"], ("qlora", "train_time_s"): p["t9_time_qlora"],
              ("full", "perplexity_paper"): p["t10_ppl_full"], ("qlora", "perplexity_paper"): p["t10_ppl_qlora"],
              ("full", "inference_time_s"): p["t11_time_full"], ("qlora", "inference_time_s"): p["t11_time_qlora"],
              ("full", "tokens_per_s"): p["t11_tps_full"], ("qlora", "tokens_per_s"): p["t11_tps_qlora"]}
    store = MetricStore()
    needed = {key for c in CATALOGUE.comparisons for key in c.inputs()} | {
        key for _, _, inputs in C.radar_specs() for key in inputs}
    for key in needed:
        store.records[key] = {"value": values.get(key, 1.0), "timing": False}
        store.paths[key] = "/".join(key) + ".json"
    out = {name: record["value"] for name, record in C.records(store, CATALOGUE.comparisons, radar=True).items()}
    assert out["trainable_reduction_percent"] == pytest.approx(98.85, abs=0.005)
    assert out["size_reduction_percent_paper_formula"] == pytest.approx(73.9, abs=0.05)
    assert out["compression_ratio_paper_formula"] == pytest.approx(3.82, abs=0.005)
    assert out["flops_reduction_percent_paper_formula"] == pytest.approx(73.9, abs=0.05)
    assert out["mfu_difference_points_paper"] == pytest.approx(-10.67, abs=0.005)
    assert out["mfu_ratio_paper"] == pytest.approx(13.18 / 2.51)
    assert out["training_time_improvement_percent"] == pytest.approx(-37.3, abs=0.05)
    assert out["training_slowdown_percent_total"] == pytest.approx(37.3, abs=0.05)
    assert out["inference_time_improvement_percent"] == pytest.approx(-212.0, abs=0.1)
    assert out["inference_slowdown_x"] == pytest.approx(3.1, abs=0.05)
    assert out["tokens_per_s_change_percent"] == pytest.approx(-67.9, abs=0.05)
    assert out["perplexity_change_percent_paper"] == pytest.approx(18.73, abs=0.01)
    # Figure 2, the paper's normalization, through radar_sources
    assert out["radar_paper_qlora_memory"] == pytest.approx(1 - 548.61 / 2098.18)
    assert out["radar_paper_qlora_training_speed"] == pytest.approx(1441.24 / 1979.42)
    assert out["radar_paper_qlora_quality"] == pytest.approx(18.42 / 21.87)
    assert out["radar_paper_qlora_inference_speed"] == pytest.approx(10.62 / 33.12)
