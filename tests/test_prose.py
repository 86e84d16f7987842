"""The report's prose is written once (templates/prose.j2) and rendered by both formats with their own escaping.
Fast: a made-up context, no pipeline run."""
import re
from collections import defaultdict

import pytest
from markupsafe import Markup

from conftest import ROOT
from qrepro.report import markup, render

TEMPLATES = ROOT / "templates"
ODD = "<b>50%_&</b> #1 {x} ~"  # every value in the made-up context: characters both formats must escape


class _OddStore:
    """Stands in for the MetricStore behind Values: every file exists, at one path."""
    paths = defaultdict(lambda: "results/metrics/x/y.json")
    paper = {"notebook_t4_peak_tflops": {"value": 35.58}}  # PaperValues' table: the MFU note's condition

    def has(self, *key):
        return True


class _OddValues:
    """Stands in for report.placeholders.Values: every number the prose names reads as ODD; the details and raw values
    the prose tests take the branches that write the most text (a CPU run that saved and evaluated otherwise)."""
    m = _OddStore()
    paper = _OddStore.paper

    def __getattr__(self, name):
        return lambda *args, **kwargs: ODD

    def interval(self, key):  # a numeric interval: the prose computes with its level and bounds
        return {"low": 1.0, "high": 2.0, "level": 0.95, "method": ODD}

    def seeds(self, key):  # one training seed, as the paper
        return None

    def details(self, key):
        return {"cuda": False, "gpu": None, "saves_at_steps": [1, 2], "evaluations_at_steps": [1],
                "ran_alone": True, "processes": [{"reserved_cores": ODD}], "runs": 20, "prompts": 4, "dtype": ODD,
                "observed_load": {"outside_cores_mean": 0.25, "outside_load_observed": True, "threshold_cores": 0.1},
                "outlier_multiple_of_p90": 3, "outlier_count": ODD, "peak_flops": 1.0,
                "status": "not loaded", "warning_logged": ODD, "hub_repository": ODD}


RUN_FACTS = {"label": ODD, "paper_architecture": False, "paper_recipe": False, "cuda": True, "gpu": ODD,
             "total_params": 1000, "total_params_source": "results/metrics/architecture/total_params.json", "total_params_title": ODD, "pretrained_paper_model": False, "paper_data": False, "random_weights": True}


def _context(reference: bool) -> dict:
    run = defaultdict(lambda: ODD, packing=False, lora_r=16, lora_alpha=32, cuda=False, model_source="pretrain", seeds=[42],
                      init="random", data_source="synthetic")
    provenance = {"git_commit": ODD, "config_digest": ODD, "generated_at": ODD, "hardware": {"cpu": ODD},
                  "packages": [("torch", ODD)], "files": [("results/x.json", ODD)]}
    ref = {"dir": ODD, "label": ODD, "judges": True, "facts": RUN_FACTS, "random_weights": True, "v": _OddValues(),
           "provenance": {"command": ODD, "git_commit": ODD, "gpu": ODD, "driver": ODD, "packages": [("torch", ODD)]}}
    paper = {"hub_id": ODD, "max_length": 512, "max_steps": 500, "eval_steps": 200, "hf_name": ODD, "hf_config": ODD,
             "precision": "fp16", "load_dtype": ODD}
    claim = {"number": 1, "evidence": ODD, "evidence_parts": [{"text": ODD}], "judged_from": "this run", "interval": None,
             "direction": [{"comparison": ODD, "label": ODD, "value": 1.5, "unit": "%", "null": 0.0, "format": "f2", "outcome": "claimed direction",
                            "source": "results/metrics/comparison/a.json", "title": ODD,
                            "interval": {"low": 1.0, "high": 2.0, "level": 0.95}, "contaminated": True},
                           {"comparison": ODD, "label": ODD, "value": 1.5, "unit": "x", "null": 1.0, "format": "f2", "outcome": "no interval",
                            "source": "results/metrics/comparison/b.json", "title": ODD, "interval": None, "contaminated": False}],
             "title": ODD, "published_title": ODD, "value_label": ODD,
             "shown_with": [{"label": ODD, "text": ODD, "unit": "%", "source": "results/metrics/comparison/c.json",
                             "title": ODD, "interval": {"low": 1.0, "high": 2.0}}],
             "published_text": ODD, "statement": ODD, "contaminated": True}
    basis = {"kind": "none", "needs": "gpu_paper_architecture", "run": "this run", "this_run": RUN_FACTS,
             "reference": RUN_FACTS if reference else None}
    return {"run": run, "v": _OddValues(), "pv": _OddValues(), "claims": [claim],
            "claim_reasons": [{"basis": basis, "numbers": [1, 4]}],
            "paper_setup": paper, "hyperparameters": {
                "full": {"weights_dtype": "float32", "optim": "adamw_torch", "optimizer_paged_tensors": 0,
                         "optimizer_state_tensors": 2, "optimizer_ran": ODD},
                "qlora": {"optim": "paged_adamw_8bit", "optimizer_paged_tensors": 0, "optimizer_state_tensors": 4,
                          "optimizer_ran": ODD, "lora_r": 16, "lora_alpha": 32}},
            "data_card": defaultdict(lambda: ODD, splits=[]), "provenance": provenance,
            "reference": ref if reference else None, "tables": [], "figures": {},
            "outline": {"numbers": {"claims": "7", "scale": "9", "reference": "8"}}, "radar_standard": ODD,
            "summary": SUMMARY, "sweeps": [],
            "deviations": {"device_is_papers_gpu": False, "paged_fallback": {"full": False, "qlora": True},
                           "timed_jobs_alone": True}}


# page one's facts (qrepro/report/summary.py), every caveat and every kind of headline present
_DIFFERENCES = [{"what": what, "key": ODD, "ran": ODD, "paper": ODD, "variant": variant, "paper_id": ODD,
                 "path": "results/metrics/full/train_time_s.json"}
                for what, variant in (("hyperparameter", "both"), ("hyperparameter", "qlora"), ("precision", None),
                                      ("sequence length", None), ("packing", None), ("checkpoints", None),
                                      ("paged optimizer", None))]
SUMMARY = {
    "claims": 7, "recipe_differences": _DIFFERENCES,
    "tally": [{"verdict": "reproduced", "count": 1, "groups": [{"basis": "architecture", "run": None, "numbers": [2]}]},
              {"verdict": "not reproduced", "count": 1, "groups": [{"basis": "reference", "run": ODD, "numbers": [1]}]},
              {"verdict": "inconclusive", "count": 0, "groups": []},
              {"verdict": "not comparable", "count": 2, "groups": [
                  {"basis": "needs gpu_paper_architecture", "run": None, "numbers": [4]},
                  {"basis": "needs paper_setup", "run": None, "numbers": [5]}]}],
    "headlines": [{"id": hid, "key": ODD, "unit": unit, "null": 0.0, "side": "above", "paper_way": True,
                   "paper": paper, "interval": interval, "excludes_null": excludes, "exact": exact,
                   "contaminated": [ODD]}
                  for hid, unit, paper, interval, excludes, exact in (
                      ("perplexity", "%", ODD, {"low": 1.0, "high": 2.0, "level": 0.95}, True, False),
                      ("training", "%", ODD, {"low": -1.0, "high": 2.0, "level": 0.95}, False, False),
                      ("peak_memory", "x", None, None, None, False),
                      ("inference", "x", ODD, None, None, False),
                      ("compression", "x", ODD, None, None, True),
                      ("trainable", "%", ODD, None, None, True))],
    "caveats": [{"kind": "scale", "stand_in": True, "pretrained_here": True, "differences": _DIFFERENCES},
                {"kind": "random_weights"},
                {"kind": "learning_rates", "full": 2e-5, "qlora": 2e-4, "ratio": 10.0, "as_paper": True},
                {"kind": "one_seed", "seed": ODD},
                {"kind": "outside_load", "jobs": [{"keys": [ODD, ODD], "path": "results/metrics/q/t.json", "cores": 0.5}]},
                {"kind": "gpu_claims", "numbers": [4, 5]}]}


def _paragraphs(env, context) -> dict:
    """The prose's paragraphs (its phrases, macros with arguments, are functions)."""
    return {name: text for name, text in render.prose(env, context).items() if not callable(text)}


@pytest.mark.parametrize("reference", [False, True])
def test_latex_prose_escapes_literal_text_and_values(reference):
    prose = _paragraphs(render.latex_environment(str(TEMPLATES)).prose_environment, _context(reference))
    assert prose and all(isinstance(text, markup.RawLatex) for text in prose.values())
    text = "\n".join(prose.values())
    assert r"\textless{}b\textgreater{}50\%\_\&\textless{}/b\textgreater{} \#1 \{x\} \textasciitilde{}" in text
    assert "<b>" not in text and "&lt;" not in text
    assert r"trains \textless{}b\textgreater{}" in prose["abstract"]  # a literal "%" follows: escaped too
    assert re.search(r"[^\\]%", text) is None, "an unescaped % would comment out the rest of a LaTeX line"
    assert "prepare\\_model\\_for\\_kbit\\_training" in prose["memory"]
    assert r"Section~\ref{sec:claims}" in prose["abstract"] and r"Table~4" in prose["lora"]
    assert r"$h = W_0 x + \frac{\alpha}{r} B A x$" in prose["lora"]
    assert r"$\alpha$ = \href{../results/train/qlora/hyperparameters.json}{32}" in prose["lora"]
    assert prose["protocol_list"].startswith("\\begin{itemize}\n\\item ") and prose["protocol_list"].count(r"\item ") == 6
    assert prose["what_ran"].startswith(r"\textbf{What ran.}") and "off (paper protocol)" in prose["what_ran"]
    assert ("GPU reference run is present" in prose["reference_run"]) is not reference


@pytest.mark.parametrize("reference", [False, True])
def test_html_prose_escapes_literal_text_and_values(reference):
    prose = _paragraphs(render.html_environment(str(TEMPLATES)).prose_environment, _context(reference))
    assert prose and all(isinstance(text, Markup) for text in prose.values())
    text = "\n".join(prose.values())
    assert "&lt;b&gt;50%_&amp;&lt;/b&gt; #1 {x} ~" in text and "<b>" not in text
    assert "QLoRA's adapters" in prose["memory"] and "prepare_model_for_kbit_training" in prose["memory"]
    assert '<a href="#claims">Section 7</a>' in prose["abstract"] and '<a href="#t4">Table 4</a>' in prose["lora"]
    assert "h = W<sub>0</sub>x + (α/r)BAx" in prose["lora"] and "ℝ<sup>r × d<sub>in</sub></sup>" in prose["lora"]
    assert prose["protocol_list"].startswith("<ul>\n<li>") and prose["protocol_list"].count("<li>") == 6
    assert prose["deviations_list"].count("<li>") == 15  # with the observed-load item and the CPU 4-bit kernel item
    assert "Observed on the machine" in prose["deviations_list"] and "outside load was observed" in prose["deviations_list"]
    assert "QLoRA asked for paged_adamw_8bit" in prose["deviations_list"]
    assert "Standard fine-tuning asked for" not in prose["deviations_list"]  # adamw_torch: nothing to page
    assert re.search(r'the median of &lt;b&gt;.*? timed runs \(<a class="num" [^>]+>5</a> per prompt',
                     str(prose["deviations_list"])) and prose["deviations_list"].count("&lt;b&gt;") >= 6
    assert '<p class="note">' in prose["notes_t1"] and ("&lt;b&gt;" in prose["notes_t13"]) is reference
    assert ("GPU reference run is present" in prose["reference_run"]) is not reference


def test_both_formats_have_the_same_paragraphs_and_words():
    latex = _paragraphs(render.latex_environment(str(TEMPLATES)).prose_environment, _context(True))
    html = _paragraphs(render.html_environment(str(TEMPLATES)).prose_environment, _context(True))
    assert latex.keys() == html.keys()
    section_refs = r"Section~\\ref\{[^}]*\}|<a href=\"#[a-z]+\">[^<]*</a>"  # numbered by LaTeX, labelled in HTML
    words = lambda text: re.findall(r"[A-Za-z]{4,}", re.sub(  # noqa: E731
        rf"{section_refs}|\\href\{{[^}}]*\}}|\\[a-z]+(\{{itemize\}})?|<[^>]*>|&[a-z]+;", " ", text))
    for name in latex:
        assert words(latex[name]) == words(html[name]), name


def test_the_report_templates_write_no_sentence():
    """Prose lives in prose.j2 only: the two report templates hold markup, headings and table headers."""
    for name in ("report.tex.j2", "report.html.j2"):
        text = (TEMPLATES / name).read_text()
        text = re.sub(r"\\BLOCK\{.*?\}|\\VAR\{.*?\}|\{%.*?%\}|\{\{.*?\}\}|<style>.*?</style>", " ", text, flags=re.S)
        for line in text.splitlines():
            assert not re.search(r"[a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+", line), f"{name}: {line}"


def test_math_outside_the_html_subset_is_refused():
    assert markup.math_html(r"A \in \mathbb{R}^{d_{out} \times r}") == "A ∈ ℝ<sup>d<sub>out</sub> × r</sup>"
    for source in (r"\sum_i x_i", r"x^{2", r"\mathbb{Q}"):
        with pytest.raises(ValueError):
            markup.math_html(source)


@pytest.mark.parametrize("init, warned", [("random", True), ("pretrained", False)])
def test_table10_says_perplexity_is_not_meaningful_exactly_when_the_weights_are_random(init, warned):
    context = _context(False)
    context["run"]["init"] = init
    notes = _paragraphs(render.html_environment(str(TEMPLATES)).prose_environment, context)["notes_t10"]
    assert ("NOT MEANINGFUL: this run used random weights" in notes) is warned


class _SeededValues(_OddValues):
    """Three training seeds: every trained number is a mean over seeds, with a test-set interval in its details."""
    def seeds(self, key):
        return {"n": 3, "seeds": [7, 8, 9], "values": [1, 2, 3], "mean": 2.0, "sd": 1.0}

    def details(self, key):
        return {**super().details(key), "seed_methods": {"7": "seed 7's method"},
                "test_set_interval": {"low": -1.0, "high": 1.0, "level": 0.95, "method": ODD}}


def test_with_several_seeds_the_prose_says_what_the_spread_and_intervals_are():
    context = _context(False)
    context["run"]["seeds"], context["v"] = [7, 8, 9], _SeededValues()
    prose = _paragraphs(render.html_environment(str(TEMPLATES)).prose_environment, context)
    assert "Training seeds:\n7, 8, 9, each variant trained once per seed" in prose["what_ran"]
    assert "(means over the 3 training seeds; each change below is the mean of the\nchanges taken seed by seed" in \
        prose["training"]
    assert "interval over the 3 training seeds" in prose["perplexity"] and "On the test set alone" in prose["perplexity"]
    for notes in ("notes_t9", "notes_t10"):
        assert "With 3 training seeds (7, 8, 9)" in prose[notes] and "Student-t" in prose[notes], notes
    assert "seed 7&#39;s method" in prose["notes_t9"] and "resampled apart (unpaired)" not in prose["notes_t9"]
