"""Derived comparisons against the paper's own printed numbers, and every verdict path with its basis.
Every paper number here is read from paper/paper_values.yaml, never written down again."""
import html
import itertools
import re

import pytest

from conftest import PAPER, ROOT
from qrepro import catalogue
from qrepro.derived import CONSISTENT_RADAR, FORMULAS, comparison_records
from qrepro.metrics_io import MetricStore
from qrepro.paper import load_paper_values
from qrepro.report import render
from qrepro.report.claims import (ARCHITECTURE, NOT_COMPARABLE, NOT_REPRODUCED, REFERENCE, REPRODUCED, THIS_RUN, Run,
                                  judge, load_claims)
from qrepro.report.numbers import PaperValues, Values
from qrepro.report.render import render_text, text_reads

CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")
PAPER_VALUES = load_paper_values(ROOT / "paper/paper_values.yaml")
FORMULA = {kind: fn for kind, (_, fn) in FORMULAS.items()}


def placeholders(text: str) -> list[tuple[str, str]]:
    """The (scope, metric) of every metric file value the text shows (v.f)."""
    return [tuple(args[0].split("/")) for obj, method, args in text_reads(text) if (obj, method) == ("v", "f")]


def test_table12_improvements_by_the_papers_formulas_from_its_own_numbers():
    """The comparison formulas, fed the paper's Tables 5-11, give the Improvement column it printed in Table 12."""
    p = PAPER
    assert FORMULA["reduction"](p["t6_trainable_qlora"], p["t6_trainable_full"]) == pytest.approx(p["t12_trainable_improvement"], abs=0.005)
    assert FORMULA["reduction"](p["t5_qlora_total_mb"], p["t5_fp16_mb"]) == pytest.approx(p["t12_size_improvement"], abs=0.05)
    assert FORMULA["reduction"](p["t7_flops_qlora"], p["t7_flops_full"]) == pytest.approx(p["t12_flops_improvement"], abs=0.05)
    assert FORMULA["points"](p["t8_mfu_qlora"], p["t8_mfu_full"]) == pytest.approx(p["t12_mfu_improvement"], abs=0.005)
    assert FORMULA["reduction"](p["t9_time_qlora"], p["t9_time_full"]) == pytest.approx(p["t12_time_improvement"], abs=0.05)
    assert FORMULA["reduction"](p["t11_time_qlora"], p["t11_time_full"]) == pytest.approx(p["t12_inference_improvement"], abs=0.1)  # printed 3 digits
    assert FORMULA["change"](p["t11_tps_qlora"], p["t11_tps_full"]) == pytest.approx(p["t12_tps_improvement"], abs=0.05)
    # perplexity: Table 12 prints (s - q) / s, positive where QLoRA is better like the column's other rows (the
    # notebook's (q - s) / s gives Table 10's +18.73)
    assert FORMULA["reduction"](p["t10_ppl_qlora"], p["t10_ppl_full"]) == pytest.approx(p["t12_ppl_improvement"], abs=0.01)
    assert FORMULA["change"](p["t10_ppl_qlora"], p["t10_ppl_full"]) == pytest.approx(p["t10_change"], abs=0.01)
    assert FORMULA["ratio"](p["t5_fp16_mb"], p["t5_qlora_total_mb"]) == pytest.approx(p["t5_compression"], abs=0.005)
    assert FORMULA["ratio"](p["t11_time_qlora"], p["t11_time_full"]) == pytest.approx(p["t11_slowdown"], abs=0.05)


def _files(values: dict, default: float = 1.0, keys=()) -> MetricStore:
    store = MetricStore()
    for key in set(values) | set(keys):
        store.records[key] = {"value": values.get(key, default), "timing": False}
        store.paths[key] = "/".join(key) + ".json"
    return store


def _paper_numbers_as_files() -> dict:
    """The paper's Tables 5-11 as the metric files the comparisons read (FLOPs in FLOPs, not TFLOPs)."""
    p = PAPER
    return {("full", "trainable_params"): p["t6_trainable_full"], ("qlora", "trainable_params"): p["t6_trainable_qlora"],
            ("structure", "size_fp16_mb_paper"): p["t5_fp16_mb"], ("structure", "size_qlora_total_mb_paper"): p["t5_qlora_total_mb"],
            ("structure", "flops_per_step_full_paper"): p["t7_flops_full"] * 1e12,
            ("structure", "flops_per_step_qlora_paper"): p["t7_flops_qlora"] * 1e12,
            ("full", "mfu_paper"): p["t8_mfu_full"], ("qlora", "mfu_paper"): p["t8_mfu_qlora"],
            ("full", "train_time_s"): p["t9_time_full"], ("qlora", "train_time_s"): p["t9_time_qlora"],
            ("full", "perplexity_paper"): p["t10_ppl_full"], ("qlora", "perplexity_paper"): p["t10_ppl_qlora"],
            ("full", "inference_time_s"): p["t11_time_full"], ("qlora", "inference_time_s"): p["t11_time_qlora"],
            ("full", "tokens_per_s_paper"): p["t11_tps_full"], ("qlora", "tokens_per_s_paper"): p["t11_tps_qlora"],
            ("full", "tokens_per_s"): p["t11_tps_full"], ("qlora", "tokens_per_s"): p["t11_tps_qlora"]}


def test_the_papers_radar_from_its_own_numbers():
    """PROTOCOL.md's normalization, by hand: memory 1 - q/s, speed s/max, quality min/max, the rest q/max, over the
    catalogue's radar points fed the paper's numbers."""
    p = PAPER
    store = _files(_paper_numbers_as_files(), keys=[k for point in CATALOGUE.radar_points for k in point.inputs()])
    out = {name: r["value"] for name, r in comparison_records(store, [], CATALOGUE.radar_points).items()}
    expected = {"memory": 1 - p["t5_qlora_total_mb"] / p["t5_fp16_mb"],
                "training_speed": p["t9_time_full"] / p["t9_time_qlora"],
                "parameter_efficiency": 1 - p["t6_trainable_qlora"] / p["t6_trainable_full"],
                "quality": p["t10_ppl_full"] / p["t10_ppl_qlora"],
                "inference_speed": p["t11_tps_qlora"] / p["t11_tps_full"], "mfu": p["t8_mfu_qlora"] / p["t8_mfu_full"]}
    assert {axis: out[f"radar_paper_qlora_{axis}"] for axis in expected} == pytest.approx(expected, abs=1e-12)
    axes = [axis["axis"] for axis in CATALOGUE.radar["axes"]]
    assert sorted(axes) == sorted(expected)
    # the consistent normalization, on made-up measurements where QLoRA is better on some axes and worse on others:
    # lower-is-better axes give min(s, q) / value, higher-is-better ones value / max(s, q)
    measured = {("full", "model_size_memory_mb"): 8.0, ("qlora", "model_size_memory_mb"): 2.0,
                ("full", "step_time_s"): 0.2, ("qlora", "step_time_s"): 0.5,
                ("full", "perplexity_token"): 30.0, ("qlora", "perplexity_token"): 24.0,
                ("full", "mfu_analytic"): 20.0, ("qlora", "mfu_analytic"): 5.0}
    store = _files({**_paper_numbers_as_files(), **measured},
                   keys=[k for point in CATALOGUE.radar_points for k in point.inputs()])
    out = {name: r["value"] for name, r in comparison_records(store, [], CATALOGUE.radar_points).items()}
    assert out["radar_consistent_full_memory"] == pytest.approx(2.0 / 8.0) and out["radar_consistent_qlora_memory"] == 1
    assert out["radar_consistent_full_training_speed"] == 1 and out["radar_consistent_qlora_training_speed"] == 0.4
    assert out["radar_consistent_full_quality"] == pytest.approx(24.0 / 30.0)
    assert out["radar_consistent_qlora_mfu"] == pytest.approx(5.0 / 20.0) and out["radar_consistent_full_mfu"] == 1
    assert out["radar_consistent_qlora_inference_speed"] == pytest.approx(p["t11_tps_qlora"] / p["t11_tps_full"])
    assert out["radar_consistent_full_parameter_efficiency"] == pytest.approx(
        p["t6_trainable_qlora"] / p["t6_trainable_full"])
    better = {axis["axis"]: axis["better"] for axis in CATALOGUE.radar["axes"]}
    assert set(better.values()) <= set(CONSISTENT_RADAR)


# ---- verdicts ----

ARCH = {"total_params": 1_100_048_384, "hidden_size": 2048, "num_layers": 22, "num_attention_heads": 32,
        "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000}


def _store(comparison: dict, paper_arch: bool = True, cuda: bool = False) -> MetricStore:
    """An in-memory metric store: the given comparison values, every other metric a claim's evidence names = 1."""
    store = MetricStore()
    claims = load_claims(str(ROOT / "paper/claims.yaml"), PAPER_VALUES)
    needed = set(itertools.chain.from_iterable(placeholders(c["evidence"])
                                               for c in claims))
    needed |= {("comparison", name) for c in claims for name in c.get("direction", {}).get("comparisons", {})}
    values = {key: 1.0 for key in needed}
    values.update({("comparison", k): v for k, v in comparison.items()})
    for k, v in ARCH.items():
        values[("paper_architecture", k)] = v
        values[("architecture", k)] = v if paper_arch else v // 1000
    for (scope, name), value in values.items():
        spec = CATALOGUE.specs.get((scope, name))
        store.records[(scope, name)] = {"value": value, "timing": False, "details": {},
                                        "unit": spec.unit if spec else "1"}
        store.paths[(scope, name)] = f"{scope}/{name}.json"
    store.records[("device", "peak_flops")] = {"value": 1.0, "details": {"cuda": cuda, "gpu": "NVIDIA H200" if cuda else None}}
    for claim in claims:  # v.detail('scope/metric', 'key'): that file's details entry (the merged model's dtype)
        for obj, method, args in text_reads(claim["evidence"]):
            if (obj, method) == ("v", "detail"):
                (scope, name), entry = args[0].split("/"), args[1]
                record = store.records.setdefault((scope, name), {"value": 1.0, "timing": False, "details": {},
                                                                  "unit": CATALOGUE.specs[(scope, name)].unit})
                record["details"][entry] = "fp32"
                store.paths[(scope, name)] = f"{scope}/{name}.json"
    return store


SETTINGS = {"init": "pretrained", "model_source": "pretrain", "data_source": "synthetic", "paper_data": False,
            "paper_recipe": True}
CLAIMS = {c["id"]: c for c in load_claims(str(ROOT / "paper/claims.yaml"), PAPER_VALUES)}


def _phrase(name: str, *args) -> str:
    """A phrase of templates/prose.j2 as the report writes it, in plain text (a phrase needs no other context)."""
    env = render.html_environment(str(ROOT / "templates")).prose_environment
    phrase = getattr(env.get_template(render.PROSE).make_module({}), name)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", str(phrase(*args))).split()))


def basis_text(verdict: dict) -> str:
    return _phrase("claim_basis", verdict)


def reason_text(basis: dict) -> str:
    return _phrase("claim_reason", basis)


def _run(label="this run", settings=SETTINGS, **kwargs):
    return Run.from_metrics(label, _store(**kwargs), settings)


def test_architecture_claims_are_judged_on_any_machine():
    cpu = _run(comparison={"paper_arch_compression_ratio_bnb_layout": 2.79, "paper_arch_trainable_reduction_percent": 98.853},
               paper_arch=False)
    compression = judge(CLAIMS["compression"], cpu, None, PAPER_VALUES)
    assert compression["verdict"] == NOT_REPRODUCED and compression["basis"]["kind"] == ARCHITECTURE
    assert basis_text(compression) == "paper architecture, arithmetic (the layout bitsandbytes loads)"
    assert compression["reproduced_value"] == 2.79
    trainable = judge(CLAIMS["trainable_reduction"], cpu, None)
    assert trainable["verdict"] == REPRODUCED and trainable["basis"]["kind"] == ARCHITECTURE


def test_gpu_ratio_claims_without_a_gpu_run_are_not_comparable_and_say_why():
    cpu = _run(comparison={"training_slowdown_percent_total": 37.3}, paper_arch=False)
    verdict = judge(CLAIMS["training_slowdown"], cpu, None)
    assert verdict["verdict"] == NOT_COMPARABLE
    assert basis_text(verdict) == "none at hand"
    reason = reason_text(verdict["basis"])
    assert reason.startswith("this run is a 1,100,048-parameter stand-in model on a CPU")
    assert reason.endswith("no reference run is present (reference/)")


def test_gpu_ratio_claims_are_judged_from_a_reference_run_then_from_this_run():
    cpu = _run(comparison={"training_slowdown_percent_total": 500.0}, paper_arch=False)
    reference = _run("h200-paper-arch", comparison={"training_slowdown_percent_total": 40.0}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], cpu, reference)
    assert verdict["verdict"] == REPRODUCED and verdict["reproduced_value"] == 40.0
    assert verdict["basis"]["kind"] == REFERENCE and verdict["judged_from"] == "h200-paper-arch"
    assert basis_text(verdict) == "GPU reference run h200-paper-arch"
    slow = _run("h200-paper-arch", comparison={"training_slowdown_percent_total": 80.0}, cuda=True)
    assert judge(CLAIMS["training_slowdown"], cpu, slow)["verdict"] == NOT_REPRODUCED
    gpu_here = _run(comparison={"training_slowdown_percent_total": 30.0}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], gpu_here, reference)
    assert verdict["basis"]["kind"] == THIS_RUN and verdict["reproduced_value"] == 30.0 and verdict["verdict"] == REPRODUCED
    assert basis_text(verdict) == "this run, on a GPU (NVIDIA H200)"


def test_a_reference_run_at_another_architecture_cannot_judge():
    cpu = _run(comparison={"inference_slowdown_x_paper": 3.1}, paper_arch=False)
    small_gpu = _run("a100-small", comparison={"inference_slowdown_x_paper": 3.1}, paper_arch=False, cuda=True)
    verdict = judge(CLAIMS["inference_slowdown"], cpu, small_gpu)
    assert verdict["verdict"] == NOT_COMPARABLE and verdict["judged_from"] == "this run"
    assert ("which the reference run (a 1,100,048-parameter stand-in model on a GPU (NVIDIA H200)) is not"
            in reason_text(verdict["basis"]))


def test_perplexity_needs_the_papers_weights_and_data():
    random_reference = _run("h200-paper-arch", settings={**SETTINGS, "init": "random"},
                            comparison={"perplexity_change_percent_paper": 18.7}, cuda=True)
    verdict = judge(CLAIMS["perplexity_increase"], _run(comparison={"perplexity_change_percent_paper": 1.0}),
                    random_reference)
    assert verdict["verdict"] == NOT_COMPARABLE and reason_text(verdict["basis"]).endswith("has random weights")
    paper_setup = {"init": "pretrained", "model_source": "hub", "data_source": "hf", "paper_data": True,
                   "paper_recipe": True}
    real = _run(settings=paper_setup, comparison={"perplexity_change_percent_paper": 18.0}, cuda=True)
    verdict = judge(CLAIMS["perplexity_increase"], real, None)
    assert verdict["verdict"] == REPRODUCED and verdict["basis"]["kind"] == THIS_RUN


def test_perplexity_needs_the_papers_recipe_too():
    """A short GPU run of TinyLlama on WikiText-2 (another recipe) judges no perplexity claim."""
    short = {"init": "pretrained", "model_source": "hub", "data_source": "hf", "paper_data": True,
             "paper_recipe": False}
    verdict = judge(CLAIMS["perplexity_increase"], _run(settings=short, comparison={
        "perplexity_change_percent_paper": 18.7}, cuda=True), None)
    assert verdict["verdict"] == NOT_COMPARABLE
    assert "with the paper's recipe on a GPU" in reason_text(verdict["basis"])


def test_every_claim_states_a_basis_and_fills_its_evidence_from_files():
    cpu = _run(comparison={c["value"]: c["published"] for c in CLAIMS.values()}, paper_arch=False)
    for claim in CLAIMS.values():
        verdict = judge(claim, cpu, None, PAPER_VALUES)
        assert basis_text(verdict) and "{" not in verdict["statement"]
        evidence = render_text(verdict["evidence"], v=Values(cpu.metrics), pv=PaperValues(PAPER_VALUES))
        assert evidence and "{" not in evidence
    store = _store({"compression_ratio_memory": 0.8912})
    assert render_text("measured {{ v.f('comparison/compression_ratio_memory', 'f2') }}x", v=Values(store)) == \
        "measured 0.89x"


def test_the_mfu_claim_is_judged_as_the_ratio_it_implies():
    """The MFU claim has its own verdict, on the ratio standard / QLoRA of the paper-protocol MFUs; its published
    figure is derived (13.18 / 2.51), not printed."""
    from qrepro.report.claims import verdicts
    cpu = _run(comparison={c["value"]: 1.0 for c in CLAIMS.values()}, paper_arch=False)
    ratio = PAPER["t8_mfu_full"] / PAPER["t8_mfu_qlora"]
    reference = _run("h200", comparison={**{c["value"]: 1.0 for c in CLAIMS.values()},
                                         "training_slowdown_percent_total": 20.0, "mfu_ratio_paper": ratio * 1.1},
                     cuda=True)
    judged = {v["id"]: v for v in verdicts(str(ROOT / "paper/claims.yaml"), PAPER_VALUES, cpu, reference)}
    assert len(judged) == 7 and [v["number"] for v in judged.values()] == list(range(1, 8))
    assert judged["training_slowdown"]["verdict"] == NOT_REPRODUCED  # 20% against 37.3%
    mfu = judged["mfu"]
    assert mfu["verdict"] == REPRODUCED and mfu["reproduced_value"] == pytest.approx(ratio * 1.1)
    assert mfu["published"] == pytest.approx(ratio) and mfu["published_derived"] and mfu["published_text"] == f"{ratio:.2f}"
    assert basis_text(mfu) == "GPU reference run h200"


def test_a_claim_no_run_can_judge_shows_its_value_labelled_and_its_reason_once():
    from qrepro.report.claims import reasons, verdicts
    cpu = _run(comparison={c["value"]: 2.0 for c in CLAIMS.values()}, paper_arch=False)
    judged = verdicts(str(ROOT / "paper/claims.yaml"), PAPER_VALUES, cpu, None)
    env = render.html_environment(str(ROOT / "templates")).prose_environment
    module = env.get_template(render.PROSE).make_module({})
    for claim in judged:
        value = html.unescape(re.sub(r"<[^>]+>", "", str(module.claim_value(claim))))
        assert (claim["verdict"] == NOT_COMPARABLE) == value.endswith("(this run, not judged)"), (claim["id"], value)
    groups = reasons(judged)  # the three GPU ratio claims share one reason, perplexity has its own
    numbers = {c["id"]: c["number"] for c in judged}
    assert sorted(g["numbers"] for g in groups) == sorted([[numbers["training_slowdown"], numbers["inference_slowdown"],
                                                           numbers["mfu"]], [numbers["perplexity_increase"]]])


def test_a_reference_run_with_another_recipe_cannot_judge():
    other = _run("h200-short", settings={**SETTINGS, "paper_recipe": False},
                 comparison={"training_slowdown_percent_total": 37.3}, cuda=True)
    verdict = judge(CLAIMS["training_slowdown"], _run(comparison={"training_slowdown_percent_total": 1.0},
                                                      paper_arch=False), other)
    assert verdict["verdict"] == NOT_COMPARABLE
    assert ("(the paper's architecture with another recipe or sequence length on a GPU (NVIDIA H200)) is not"
            in reason_text(verdict["basis"]))


def test_the_comparison_files_are_wired_to_the_right_inputs():
    """The comparisons over a store holding the paper's own numbers give its Table 12 column and headline ratios:
    swapping a and b in any definition would flip a sign or invert a ratio here."""
    p = PAPER
    needed = {key for c in CATALOGUE.comparisons for key in c.inputs()} | {
        key for point in CATALOGUE.radar_points for key in point.inputs()}
    store = _files(_paper_numbers_as_files(), keys=needed)
    out = {name: record["value"] for name, record in
           comparison_records(store, CATALOGUE.comparisons, CATALOGUE.radar_points).items()}
    assert out["trainable_reduction_percent"] == pytest.approx(p["t12_trainable_improvement"], abs=0.005)
    assert out["size_reduction_percent_paper_formula"] == pytest.approx(p["t12_size_improvement"], abs=0.05)
    assert out["compression_ratio_paper_formula"] == pytest.approx(p["t5_compression"], abs=0.005)
    assert out["flops_reduction_percent_paper_formula"] == pytest.approx(p["t12_flops_improvement"], abs=0.05)
    assert out["mfu_difference_points_paper"] == pytest.approx(p["t12_mfu_improvement"], abs=0.005)
    assert out["mfu_ratio_paper"] == pytest.approx(p["t8_mfu_full"] / p["t8_mfu_qlora"])
    assert out["training_time_improvement_percent"] == pytest.approx(p["t12_time_improvement"], abs=0.05)
    assert out["training_slowdown_percent_total"] == pytest.approx(-p["t9_relative"], abs=0.05)
    assert out["inference_time_improvement_percent"] == pytest.approx(p["t12_inference_improvement"], abs=0.1)
    assert out["inference_slowdown_x"] == pytest.approx(p["t11_slowdown"], abs=0.05)
    assert out["tokens_per_s_change_percent"] == pytest.approx(p["t12_tps_improvement"], abs=0.05)
    assert out["perplexity_change_percent_paper"] == pytest.approx(p["t10_change"], abs=0.01)
    # Table 12's Improvement, positive where QLoRA is better: the paper's lower-is-better perplexity prints -18.73
    assert out["perplexity_improvement_percent_paper"] == pytest.approx(p["t12_ppl_improvement"], abs=0.01)
    # Figure 2, the paper's normalization, through the catalogue's radar axes
    assert out["radar_paper_qlora_memory"] == pytest.approx(1 - p["t5_qlora_total_mb"] / p["t5_fp16_mb"])
    assert out["radar_paper_qlora_training_speed"] == pytest.approx(p["t9_time_full"] / p["t9_time_qlora"])
    assert out["radar_paper_qlora_quality"] == pytest.approx(p["t10_ppl_full"] / p["t10_ppl_qlora"])
    assert out["radar_paper_qlora_inference_speed"] == pytest.approx(p["t11_tps_qlora"] / p["t11_tps_full"])


def test_the_perplexity_claim_shows_both_protocols_labelled_and_names_the_one_it_judges():
    """Claim 5: the paper-protocol change (judged) and the token-level change (shown, unjudged), each labelled with
    its own file's value; the verdict says which it judges."""
    cpu = _run(comparison={"perplexity_change_percent_paper": 34.8012, "perplexity_change_percent_token": -21.0049})
    verdict = judge(CLAIMS["perplexity_increase"], cpu, None)
    value = _phrase("claim_value", verdict)
    assert value == ("paper protocol: 34.80%; token level: -21.00% (this run, not judged)")
    assert verdict["reproduced_value"] == 34.8012 and verdict["shown_with"][0]["value"] == -21.0049
    assert _phrase("claim_verdict", verdict) == "not comparable (judging the paper protocol value)"
    # a claim with one value shows it unlabelled, and its verdict alone
    other = judge(CLAIMS["training_slowdown"], _run(comparison={"training_slowdown_percent_total": 5.0}), None)
    assert _phrase("claim_verdict", other) == "not comparable" and not _phrase("claim_value", other).startswith("paper")
