"""The page-one summary (qrepro/report/summary.py, worded by templates/prose.j2 summary_*): the verdict tally against
an independent count, each caveat present exactly when its condition holds, and the direction sentences on made-up
metric values. Fast: in-memory stores, no pipeline run."""
import html
import re
from collections import Counter

import pytest

from conftest import PAPER, ROOT
from qrepro.metrics_io import MetricStore
from qrepro.paper import load_paper_values
from qrepro.report import render
from qrepro.report.claims import NOT_COMPARABLE, verdicts
from qrepro.report.numbers import PaperValues, Values
from qrepro.report.summary import HEADLINES, VERDICTS, caveats, headline, tally
from test_claims import CLAIMS, _run

PAPER_VALUES = load_paper_values(ROOT / "paper/paper_values.yaml")
SETUP = {"max_steps": 500, "precision": "fp16", "max_length": 512}  # the paper's setup, as configs/paper.yaml gives it
HEADLINE = {h.id: h for h in HEADLINES}


# ---- the tally ----

@pytest.mark.parametrize("judged_value", [0.5, 1.0, 2.0])
def test_the_tally_counts_every_verdict_and_groups_its_claims_by_basis(judged_value):
    """Against Counter over the verdicts: each count, every claim in exactly one group of its own verdict."""
    cpu = _run(comparison={c["value"]: c["published"] * judged_value for c in CLAIMS.values()}, paper_arch=False)
    judged = verdicts(str(ROOT / "paper/claims.yaml"), PAPER_VALUES, cpu, None)
    rows = tally(judged)
    expected = Counter(c["verdict"] for c in judged)
    assert [row["verdict"] for row in rows] == list(VERDICTS)
    assert {row["verdict"]: row["count"] for row in rows} == {v: expected.get(v, 0) for v in VERDICTS}
    assert sum(row["count"] for row in rows) == len(judged) == 7
    for row in rows:
        numbers = [n for g in row["groups"] for n in g["numbers"]]
        assert sorted(numbers) == sorted(c["number"] for c in judged if c["verdict"] == row["verdict"])
    not_comparable = next(row for row in rows if row["verdict"] == NOT_COMPARABLE)
    by_basis = {g["basis"]: g["numbers"] for g in not_comparable["groups"]}
    number = {c["id"]: c["number"] for c in judged}
    assert by_basis == {"needs gpu_paper_architecture": [number["training_slowdown"], number["inference_slowdown"],
                                                         number["mfu"]],
                        "needs paper_setup": [number["perplexity_increase"]]}


# ---- the caveats ----

def _store(values: dict, timed: dict | None = None) -> MetricStore:
    """In-memory metric files: values[(scope, metric)] = value or (value, details); timed: the same, timing true."""
    store = MetricStore()
    for timing, entries in ((False, values), (True, timed or {})):
        for (scope, metric), entry in entries.items():
            value, details = entry if isinstance(entry, tuple) else (entry, {})
            details = dict(details)
            flag = {"contaminated": details.pop("contaminated")} if "contaminated" in details else {}  # top level
            store.records[(scope, metric)] = {"value": value, "unit": "%" if metric.endswith("percent") else "1",
                                              "timing": timing, "details": details, "method": "made up", **flag}
            store.paths[(scope, metric)] = f"results/metrics/{scope}/{metric}.json"
    return store


def _base(changes: dict | None = None) -> dict:
    """A run at the paper's setup in every fact the caveats read (no caveat of scale or recipe)."""
    return {("architecture", "total_params"): 1000, ("paper_architecture", "total_params"): 1000,
            ("full", "precision"): "fp16", ("dataset", "max_seq_length"): 512,
            ("dataset", "packing"): False, ("full", "train_time_s"): (1.0, {"saves_at_steps": [500]}), **(changes or {})}


def _paper_hyperparameters(variant: str) -> dict:
    """hyperparameters.json of a run at the paper's Tables 3 and 4 (read from paper/paper_values.yaml)."""
    hp = {"max_steps": PAPER[f"t3_steps_{variant}"], "per_device_train_batch_size": PAPER[f"t3_batch_{variant}"],
          "per_device_eval_batch_size": PAPER[f"t3_eval_batch_{variant}"], "learning_rate": PAPER[f"t3_lr_{variant}"],
          "gradient_accumulation_steps": PAPER[f"t3_accum_{variant}"], "warmup_steps": PAPER[f"t3_warmup_{variant}"],
          "optim": "adamw_torch", "optimizer_paged_tensors": 0, "optimizer_state_tensors": 2}
    if variant == "qlora":
        hp |= {"lora_r": PAPER["t4_lora_r"], "lora_alpha": PAPER["t4_lora_alpha"], "lora_dropout": PAPER["t4_lora_dropout"]}
    return hp


HP = {variant: _paper_hyperparameters(variant) for variant in ("full", "qlora")}
RUN = {"model_source": "hub", "init": "pretrained", "seeds": [1, 2, 3]}


def _kinds(store, run=RUN, hp=HP, claims=()) -> dict:
    return {c["kind"]: c for c in caveats(store, run, list(claims), hp, SETUP, PAPER_VALUES)}


def test_at_the_papers_setup_the_only_caveat_is_its_own_learning_rates():
    """Several seeds, the paper's architecture and recipe, no outside load, no claim left to a GPU."""
    assert list(_kinds(_store(_base()))) == ["learning_rates"]
    assert _kinds(_store(_base()))["learning_rates"]["as_paper"] is True


def test_the_recipe_differences_are_the_tables_3_and_4_numbers_a_run_did_not_use():
    hp = {"full": {**HP["full"], "warmup_steps": 4, "max_steps": 24},
          "qlora": {**HP["qlora"], "warmup_steps": 4, "max_steps": 24, "lora_r": 8}}
    found = {(d["key"], d["variant"]): (d["ran"], d["paper"]) for d in _kinds(_store(_base()), hp=hp)["scale"]["differences"]}
    assert found == {("warmup_steps", "both"): (4, PAPER["t3_warmup_full"]), ("max_steps", "both"): (24, PAPER["t3_steps_full"]),
                     ("lora_r", "qlora"): (8, PAPER["t4_lora_r"])}
    hp["qlora"]["warmup_steps"] = 5  # the variants differ from the paper differently: one entry each
    found = [(d["key"], d["variant"], d["ran"]) for d in _kinds(_store(_base()), hp=hp)["scale"]["differences"]
             if d["key"] == "warmup_steps"]
    assert found == [("warmup_steps", "full", 4), ("warmup_steps", "qlora", 5)]


def test_the_scale_caveat_names_each_difference_from_the_papers_recipe():
    store = _store(_base({("architecture", "total_params"): 10, ("dataset", "max_seq_length"): 64,
                          ("full", "train_time_s"): (1.0, {"saves_at_steps": [100, 200, 500]})}))
    scale = _kinds(store, run={**RUN, "model_source": "pretrain"})["scale"]
    assert scale["stand_in"] and scale["pretrained_here"]
    assert [(d["what"], d["ran"], d["paper"]) for d in scale["differences"]] == [
        ("sequence length", 64, 512), ("checkpoints", 3, 1)]
    paged = {**HP, "qlora": {**HP["qlora"], "optim": "paged_adamw_8bit", "optimizer_ran": "AdamW8bit",
                             "optimizer_state_tensors": 4}}
    scale = _kinds(_store(_base()), hp=paged)["scale"]
    assert not scale["stand_in"] and [d["what"] for d in scale["differences"]] == ["paged optimizer"]


@pytest.mark.parametrize("full, qlora, shown", [(PAPER["t3_lr_full"], PAPER["t3_lr_qlora"], True), (2e-4, 2e-4, False),
                                               (1e-3, 1e-4, True)])
def test_the_learning_rate_caveat_appears_exactly_when_the_variants_rates_differ(full, qlora, shown):
    hp = {"full": {**HP["full"], "learning_rate": full}, "qlora": {**HP["qlora"], "learning_rate": qlora}}
    found = _kinds(_store(_base()), hp=hp)
    assert ("learning_rates" in found) is shown
    if shown:
        assert found["learning_rates"]["ratio"] == pytest.approx(qlora / full)
        assert found["learning_rates"]["as_paper"] is (full == PAPER["t3_lr_full"] and qlora == PAPER["t3_lr_qlora"])


@pytest.mark.parametrize("seeds, shown", [([42], True), ([7, 8], False), ([1, 2, 3], False)])
def test_the_one_seed_caveat_appears_exactly_with_one_training_seed(seeds, shown):
    assert ("one_seed" in _kinds(_store(_base()), run={**RUN, "seeds": seeds})) is shown


@pytest.mark.parametrize("details, timing, shown", [
    ({"observed_load": {"outside_load_observed": True, "outside_cores_mean": 0.55}}, True, True),
    ({"observed_load": {"outside_load_observed": False, "outside_cores_mean": 0.05}}, True, False),
    ({"outside_load_observed": True}, True, True),
    ({"contaminated": True}, True, True),
    ({"contaminated": False}, True, False),
    ({"observed_load": {"outside_load_observed": True, "outside_cores_mean": 0.55}}, False, False),  # not a timing
])
def test_the_outside_load_caveat_appears_exactly_when_a_timed_file_observed_it(details, timing, shown):
    entry = {("qlora", "train_time_s"): (1.0, {"saves_at_steps": [500], **details})}
    store = _store(_base({} if timing else entry), timed=entry if timing else None)
    found = _kinds(store)
    assert ("outside_load" in found) is shown
    if shown:
        [job] = found["outside_load"]["jobs"]
        assert job["keys"] == ["qlora/train_time_s"] and job["path"] == "results/metrics/qlora/train_time_s.json"
        assert job["cores"] == details.get("observed_load", {}).get("outside_cores_mean")


def test_files_of_one_timed_block_are_one_job_of_the_outside_load_caveat():
    load = {"observed_load": {"outside_load_observed": True, "outside_cores_mean": 0.55}}
    other = {"observed_load": {"outside_load_observed": True, "outside_cores_mean": 0.2}}
    store = _store(_base(), timed={("qlora", "step_time_s"): (1.0, load), ("qlora", "train_time_s"): (1.0, load),
                                   ("full", "inference_time_s"): (1.0, other), ("full", "step_time_s"): (1.0, {})})
    jobs = _kinds(store)["outside_load"]["jobs"]
    assert sorted((j["keys"], j["cores"]) for j in jobs) == [(["full/inference_time_s"], 0.2),
                                                             (["qlora/step_time_s", "qlora/train_time_s"], 0.55)]


def test_the_gpu_caveat_names_the_claims_no_cpu_run_can_judge():
    cpu = _run(comparison={c["value"]: 1.0 for c in CLAIMS.values()}, paper_arch=False)
    judged = verdicts(str(ROOT / "paper/claims.yaml"), PAPER_VALUES, cpu, None)
    expected = [c["number"] for c in judged if c["verdict"] == NOT_COMPARABLE]
    assert len(expected) == 4 and _kinds(_store(_base()), claims=judged)["gpu_claims"]["numbers"] == expected
    judged_all = [{**c, "verdict": "reproduced"} for c in judged]
    assert "gpu_claims" not in _kinds(_store(_base()), claims=judged_all)


# ---- the headline comparisons and their sentences ----

def _sentence(store: MetricStore, fact: dict) -> str:
    """summary_headline as the HTML report writes it, in plain text."""
    env = render.html_environment(str(ROOT / "templates")).prose_environment
    module = env.get_template(render.PROSE).make_module({"v": Values(store), "pv": PaperValues(PAPER_VALUES)})
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", str(module.summary_headline(fact))).split()))


def _comparison(name: str, value: float, interval: tuple | None, unit: str, timed: dict | None = None) -> MetricStore:
    store = _store({}, timed=timed)
    store.records[("comparison", name)] = {
        "value": value, "unit": unit, "timing": False, "method": "made up",
        "details": {"a": {"metric": "qlora/inference_time_s"}, "b": {"metric": "full/inference_time_s"}},
        **({"interval": {"low": interval[0], "high": interval[1], "level": 0.95, "method": "made up"}} if interval else {})}
    store.paths[("comparison", name)] = f"results/metrics/comparison/{name}.json"
    return store


@pytest.mark.parametrize("value, interval, paper_way, excludes, words", [
    (-21.0, (-25.0, -16.96), False, True, "QLoRA's is 21.00% lower (95% interval -25.00% to -16.96%): against the "
                                          "paper's direction (paper: +18.73%); the interval excludes no difference."),
    (1.99, (1.94, 2.05), True, True, "QLoRA's is 1.99% higher (95% interval +1.94% to +2.05%): the paper's direction "
                                     "(paper: +18.73%); the interval excludes no difference."),
    (0.5, (-0.4, 1.2), True, False, "the interval includes no difference, so this run does not tell the two apart."),
])
def test_perplexity_sentence_says_direction_size_and_whether_the_interval_excludes_no_difference(
        value, interval, paper_way, excludes, words):
    store = _comparison("perplexity_change_percent_token", value, interval, "%")
    fact = headline(store, HEADLINE["perplexity"])
    assert fact["paper_way"] is paper_way and fact["excludes_null"] is excludes and fact["contaminated"] == []
    assert words in _sentence(store, fact)


@pytest.mark.parametrize("value, interval, expected", [
    (3.07, (2.88, 3.25), "QLoRA takes 3.07× standard's time (95% interval 2.88 to 3.25): the paper's direction "
                         "(paper: 3.1×); the interval excludes no difference."),
    (0.8, (0.68, 0.87), "against the paper's direction (paper: 3.1×); the interval excludes no difference."),
    (1.02, (0.95, 1.10), "the paper's direction (paper: 3.1×); the interval includes no difference"),
    (1.5, None, "the paper's direction (paper: 3.1×); one measurement each, its noise not measured."),
])
def test_a_ratio_sentence_reads_its_side_of_one(value, interval, expected):
    store = _comparison("inference_slowdown_x", value, interval, "x")
    assert expected in _sentence(store, headline(store, HEADLINE["inference"]))


def test_a_comparison_of_a_contaminated_timing_says_so():
    load = {"observed_load": {"outside_load_observed": True, "outside_cores_mean": 0.55}}
    store = _comparison("inference_slowdown_x", 3.0, (2.9, 3.1), "x",
                        timed={("qlora", "inference_time_s"): (1.0, load), ("full", "inference_time_s"): (1.0, {})})
    fact = headline(store, HEADLINE["inference"])
    assert fact["contaminated"] == ["qlora/inference_time_s"]
    assert _sentence(store, fact).endswith("outside load was observed while qlora/inference_time_s was timed.")


def test_an_exact_count_has_no_noise_and_memory_has_no_paper_figure():
    store = _comparison("compression_ratio_memory", 0.89, None, "x")
    fact = headline(store, HEADLINE["compression"])
    assert not fact["paper_way"] and fact["excludes_null"] is None
    assert _sentence(store, fact) == ("Model size in memory: the standard model is 0.89× QLoRA's: against the paper's "
                                      "direction (paper: 3.82×); a count, without noise.")
    store = _comparison("peak_memory_ratio", 1.2, None, "x")
    assert "the direction QLoRA is designed for (the paper prints no figure)" in _sentence(
        store, headline(store, HEADLINE["peak_memory"]))


def test_the_deviations_the_report_lists_are_decided_from_the_files():
    """deviation_facts: the paper's GPU by name, a paged optimizer whose state stayed unpaged, and whether every
    timing file (timing: true) ran alone, whatever its name."""
    from qrepro.report.context import deviation_facts

    store = MetricStore()
    store.records[("device", "peak_flops")] = {"value": 1.0, "timing": True, "details": {"gpu": "Tesla T4",
                                                                                      "ran_alone": True}}
    store.records[("full", "some_new_timing_s")] = {"value": 2.0, "timing": True, "details": {"ran_alone": False}}
    store.records[("full", "total_params")] = {"value": 3, "timing": False, "details": {"ran_alone": False}}
    hp = {"full": {"optim": "adamw_torch", "optimizer_paged_tensors": 0, "optimizer_state_tensors": 2},
          "qlora": {"optim": "paged_adamw_8bit", "optimizer_paged_tensors": 1, "optimizer_state_tensors": 4}}
    facts = deviation_facts(store, hp)
    assert facts == {"device_is_papers_gpu": True, "paged_fallback": {"full": False, "qlora": True},
                     "timed_jobs_alone": False}
    del store.records[("full", "some_new_timing_s")]  # an untimed file's details do not count
    hp["qlora"]["optimizer_paged_tensors"] = 4
    store.records[("device", "peak_flops")]["details"]["gpu"] = "NVIDIA H200"
    assert deviation_facts(store, hp) == {"device_is_papers_gpu": False, "paged_fallback": {"full": False, "qlora": False},
                                          "timed_jobs_alone": True}
