"""The metric catalogue (paper/metrics.yaml) and the files it declares: what a job may write, with which unit, method and timing; comparisons; the docs generated from it."""
import json
import re

import pytest

from conftest import ROOT
from qrepro import catalogue
from qrepro.metrics_io import read_metric, write_metrics


CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")


MINI = {
    "phrases": {"where": "{{ 'CUDA' if cuda else 'CPU' }}"},
    "groups": [
        {"scopes": {"full": "timed", "qlora": "timed"}, "metrics": {
            "time_s": {"unit": "s", "timing": True, "method": "Median of {{ runs }} runs on {{ where }}."},
            "size_mb": {"unit": "MB", "method": {"full": "The 16-bit model.", "qlora": "The NF4 base."}}}},
        {"scopes": {"data": "count"}, "expand": {"split": ["train", "test"]}, "metrics": {
            "{split}_rows": {"unit": "rows", "method": "Rows of {{ split }}."}}},
    ],
    "comparisons": [{"name": "slowdown_x", "formula": "ratio", "a": "qlora/time_s", "b": "full/time_s",
                     "meaning": "QLoRA's time / standard's"}],
    "tables": [],
}


def _mini():
    return catalogue.Catalogue(MINI, "mini")


def _declared(cat, rule, scope, tmp_path):
    return {str(tmp_path / path): spec for path, spec in
            cat.declared([p.replace("{variant}", scope) for p in cat.outputs(rule, "{variant}")]).items()}


def test_a_job_writes_its_metrics_with_the_catalogues_unit_method_and_timing(tmp_path):
    cat = _mini()
    declared = _declared(cat, "timed", "qlora", tmp_path)
    write_metrics(declared, {"time_s": dict(value=2.5, inputs=["a"], method_fields={"runs": 5, "cuda": False}),
                             "size_mb": dict(value=10.0, inputs=["b"])})
    time_s = read_metric(tmp_path / "results/metrics/qlora/time_s.json")
    assert (time_s["unit"], time_s["method"], time_s["timing"], time_s["scope"]) == (
        "s", "Median of 5 runs on CPU.", True, "qlora")
    size = read_metric(tmp_path / "results/metrics/qlora/size_mb.json")
    assert (size["method"], size["timing"]) == ("The NF4 base.", False)  # the qlora scope's own text


def test_a_job_must_write_exactly_what_is_declared_and_nothing_of_its_own(tmp_path):
    cat = _mini()
    declared = _declared(cat, "timed", "full", tmp_path)
    fields = {"runs": 1, "cuda": True}
    with pytest.raises(ValueError, match=r"missing \['size_mb'\]"):
        write_metrics(declared, {"time_s": dict(value=1.0, inputs=[], method_fields=fields)})
    with pytest.raises(ValueError, match=r"not declared \['other'\]"):
        write_metrics(declared, {"time_s": dict(value=1.0, inputs=[], method_fields=fields),
                                 "size_mb": dict(value=1.0, inputs=[]), "other": dict(value=1, inputs=[])})
    with pytest.raises(ValueError, match="come from the catalogue"):  # the bad record comes second: nothing written
        write_metrics(declared, {"time_s": dict(value=1.0, inputs=[], method_fields=fields),
                                 "size_mb": dict(value=1.0, inputs=[], unit="GB")})
    import jinja2
    with pytest.raises(jinja2.UndefinedError, match="runs"):  # a method field the job did not supply
        write_metrics(declared, {"time_s": dict(value=1.0, inputs=[], method_fields={"cuda": True}),
                                 "size_mb": dict(value=1.0, inputs=[])})
    assert not list(tmp_path.rglob("*.json"))


def test_expansions_comparisons_and_rule_outputs():
    cat = _mini()
    assert cat.outputs("count") == ["results/metrics/data/train_rows.json", "results/metrics/data/test_rows.json"]
    assert cat.specs[("data", "test_rows")].fields == {"split": "test"}
    assert cat.outputs("timed", "{variant}") == ["results/metrics/{variant}/time_s.json",
                                                 "results/metrics/{variant}/size_mb.json"]
    slowdown = cat.specs[("comparison", "slowdown_x")]
    assert (slowdown.rule, slowdown.unit, slowdown.timing) == ("comparisons", "x", True)  # a ratio of timings
    assert slowdown.method == "QLoRA's time / standard's: a / b, a = qlora/time_s, b = full/time_s."
    with pytest.raises(catalogue.CatalogueError, match="declared twice"):
        catalogue.Catalogue({**MINI, "groups": MINI["groups"] + [MINI["groups"][1]]}, "mini")
    broken = {**MINI, "comparisons": [{**MINI["comparisons"][0], "b": "full/nowhere"}]}
    with pytest.raises(catalogue.CatalogueError, match="full/nowhere, which no rule writes"):
        catalogue.Catalogue(broken, "mini")


def test_every_metric_of_a_run_is_in_the_catalogue_with_its_unit(test_run):
    written = {str(p.relative_to(test_run)) for p in (test_run / "results/metrics").rglob("*.json")}
    assert written == set(CATALOGUE.paths())
    for path in written:
        record = json.loads((test_run / path).read_text())
        spec = CATALOGUE.specs[(record["scope"], record["metric"])]
        assert record["unit"] == spec.unit and "{{" not in record["method"]


def test_every_comparison_file_is_its_formula_of_the_files_it_names(test_run):
    formulas = {"ratio": lambda a, b: a / b, "reduction": lambda a, b: 100 * (1 - a / b),
                "change": lambda a, b: 100 * (a / b - 1), "points": lambda a, b: a - b}  # PROTOCOL.md's formulas
    value = lambda scope, name: read_metric(test_run / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    for c in CATALOGUE.comparisons:
        record = read_metric(test_run / f"results/metrics/comparison/{c.name}.json")
        assert record["value"] == pytest.approx(formulas[c.formula](value(*c.a), value(*c.b))), c.name
        metric_inputs = [f"results/metrics/{s}/{n}.json" for s, n in (c.a, c.b)]
        audits = [f"results/eval/{s}/perplexity_audit.json" for s, n in (c.a, c.b) if n.startswith("perplexity_")]
        assert sorted(record["inputs"]) == sorted(metric_inputs + audits), c.name
        if audits:  # a paired interval around the value it was resampled from
            assert record["interval"]["low"] <= record["value"] <= record["interval"]["high"], c.name
        medians = [(read_metric(test_run / path).get("details") or {}).get("bootstrap", {}).get("statistic") == "median"
                   for path in metric_inputs]
        if all(medians):  # two medians: paired by round when one job timed both (inference), else unpaired (two
            # training runs); never silently none
            boots = [read_metric(test_run / path)["details"]["bootstrap"] for path in metric_inputs]
            one_job = all(boot.get("groups") for boot in boots) and boots[0]["pairing"] == boots[1]["pairing"]
            assert ("paired by round" if one_job else "unpaired") in record["interval"]["method"], c.name
            assert one_job == (c.a[1] in ("inference_time_s", "tokens_per_s")), c.name


def test_every_number_the_prose_names_is_a_declared_metric():
    named = re.findall(r'v\.\w+\("(\w+)/(\w+)"', (ROOT / "templates/prose.j2").read_text())
    assert len(named) > 50
    assert {key for key in named if key not in CATALOGUE.specs} == set()


def test_a_comparison_of_a_run_dependent_timing_is_refused():
    data = {**MINI, "groups": MINI["groups"] + [{"scopes": {"device": "peak"}, "metrics": {
        "peak": {"unit": "FLOP/s", "timing": "{{ measured }}", "method": "Peak."}}}],
        "comparisons": [{"name": "x", "formula": "ratio", "a": "device/peak", "b": "full/time_s", "meaning": "m"}]}
    with pytest.raises(catalogue.CatalogueError, match="device/peak is a timing or not depending on the run"):
        catalogue.Catalogue(data, "mini")


def test_the_metric_reference_in_docs_is_generated_from_the_catalogue():
    """docs/metrics.md is `snakemake docs` output: a catalogue change without regenerating it fails here."""
    assert (ROOT / "docs/metrics.md").read_text() == catalogue.markdown_reference(CATALOGUE)
    text = catalogue.markdown_reference(CATALOGUE)
    for spec in CATALOGUE.specs.values():  # every file has its row
        assert f"`{spec.scope}/{spec.name}`" in text or f"`{spec.name}`" in text
