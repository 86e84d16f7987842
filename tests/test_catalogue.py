"""The metric catalogue (paper/metrics.yaml): what a job may write, the tables built from it, and the library
inputs each rule gets from its script's imports."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from conftest import ROOT, snakemake
from qrepro import catalogue
from qrepro.dependencies import library_files
from qrepro.metrics_io import MetricStore, read_metric, write_metrics
from qrepro.paper import load_paper_values
from qrepro.report.numbers import PaperValues, Values
from qrepro.report.render import render_text
from qrepro.report.tables import Sources, build_table

CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")
PAPER = load_paper_values(str(ROOT / "paper/paper_values.yaml"))

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


def test_every_table_cell_names_a_declared_metric_and_a_known_paper_value():
    for table in CATALOGUE.tables:
        for row, column, spec in table.cells():
            assert column in table.columns, (table.number, row.label)
            assert spec.paper_id is None or spec.paper_id in PAPER, spec.text
            assert spec.variant or spec.metric_key in CATALOGUE.specs, spec.text
    # that the finetune job writes every hyperparameter a table reads: test_pipeline, on a real run's files


def catalogue_cell(source):
    """(scope, metric) of a cell's source written as in the catalogue, "scope/metric"."""
    return catalogue.CellSpec.parse(f"{source}|g").metric_key


def _store(tmp_path, values):
    store = MetricStore()
    for (scope, name), (value, method, details) in values.items():
        store.records[(scope, name)] = {"value": value, "method": method, "details": details, "timing": False,
                                         "unit": ""}
        store.paths[(scope, name)] = f"{scope}/{name}.json"
    return store


def test_a_table_from_its_spec(tmp_path):
    store = _store(tmp_path, {("full", "flops"): (2.5e12, "counted", {}), ("qlora", "ppl"): (12.0, "not meaningful", {}),
                              ("paper_architecture", "hidden_size"): (2048, "read", {"runs": 7})})
    sources = Sources(store, {"qlora": {"target_modules": ["q_proj", "v_proj"], "lora_r": 16}},
                      {"qlora": "results/train/qlora/hyperparameters.json"})
    spec = {"number": 7, "caption": "Runs: {{ v.detail('paper_architecture/hidden_size', 'runs') }}", "columns": ["A", "B"],
            "rows": [["FLOPs", {"A": "full/flops*1e-12|g|t7_flops_full"}],
                     ["Modules", {"A": "hp:qlora/target_modules#count|int|t4_target_modules",
                                  "B": "hp:qlora/target_modules#join|text"}],
                     {"label": "probe", "cells": {"A": "probe_full/peak|f0"}, "when": "probe_full/peak"}]}
    table = build_table(catalogue.TableSpec.from_data(spec), sources, PAPER)
    assert table.caption == "Runs: 7"
    assert [label for label, _ in table.rows] == ["FLOPs", "Modules"]  # no probe file: no probe row
    flops = table.rows[0][1]["A"]
    assert (flops.value, flops.source) == (2.5, "full/flops.json")
    assert flops.ratio(PAPER) == pytest.approx(2.5 / PAPER["t7_flops_full"]["value"])
    modules = table.rows[1][1]
    assert (modules["A"].value, modules["B"].value) == (2, "q_proj, v_proj")
    with pytest.raises(ValueError, match="SOURCE"):
        catalogue.CellSpec.parse("full/flops|g|a|b")


def test_catalogue_texts_render_values_paper_numbers_methods_and_details():
    store = _store(None, {("comparison", "x"): (3.8246, "m", {}), ("full", "y"): (1.0, "How it was done.", {"gpu": "T4"})})
    text = ("a {{ v.f('comparison/x', 'f2') }} b {{ pv.f('t10_change', '+f2') }} c {{ v.method('full/y') }} "
            "d {{ v.detail('full/y', 'gpu') }} e {{ reference }}")
    names = {"v": Values(store), "pv": PaperValues(PAPER)}
    assert render_text(text, **names, reference="h200") == \
        f"a 3.82 b {PAPER['t10_change']['value']:+.2f} c How it was done. d T4 e h200"
    with pytest.raises(jinja2.UndefinedError, match="reference"):
        render_text("{{ reference }}", **names)


def _runtime_imports(module):
    """The qrepro modules Python itself loads when importing module (top-level imports only)."""
    code = (f"import sys; import {module}; "
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'qrepro')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {str(Path(f).relative_to(ROOT)) for f in out.split()}


@pytest.mark.parametrize("module", ["qrepro.catalogue", "qrepro.report.claims", "qrepro.report.tables",
                                    "qrepro.evaluation.records", "qrepro.data.checks"])
def test_library_inputs_cover_every_module_python_loads(module, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(f"import {module}\n")
    declared = set(library_files(script, ROOT / "scripts", ROOT))
    assert _runtime_imports(module) <= declared
    assert "schemas/metric.schema.json" in declared or "metrics_io" not in " ".join(declared)


def test_library_inputs_follow_relative_function_level_and_module_imports(tmp_path):
    pkg = tmp_path / "scripts/qrepro"
    (pkg / "sub").mkdir(parents=True)
    for name, text in {"__init__.py": "", "a.py": "from .sub import b\n", "sub/__init__.py": "",
                       "sub/b.py": "def f():\n    from qrepro import c\n", "c.py": "WORKFLOW_FILES = ('data/x.yaml',)\n",
                       "unused.py": ""}.items():
        (pkg / name).write_text(text)
    script = tmp_path / "scripts/job.py"
    script.write_text("import json\nfrom qrepro.a import something\n")
    assert library_files(script, tmp_path / "scripts", tmp_path) == [
        "data/x.yaml", "scripts/qrepro/__init__.py", "scripts/qrepro/a.py", "scripts/qrepro/c.py",
        "scripts/qrepro/sub/__init__.py", "scripts/qrepro/sub/b.py"]


def test_every_metric_of_a_run_is_in_the_catalogue_with_its_unit(test_run):
    written = {str(p.relative_to(test_run)) for p in (test_run / "results/metrics").rglob("*.json")}
    assert written == set(CATALOGUE.paths())
    for path in written:
        record = json.loads((test_run / path).read_text())
        spec = CATALOGUE.specs[(record["scope"], record["metric"])]
        assert record["unit"] == spec.unit and "{{" not in record["method"]


def test_editing_a_module_reruns_exactly_the_rules_that_import_it(run_copy):
    # hand-listed from the scripts' imports: placeholders is used by the tables and by the report's claims/context
    expected = {"qrepro/report/placeholders.py": {"tables", "render", "manifest", "pdf", "report"},
                "qrepro/derived.py": {"comparisons", "architecture_comparisons", "mfu", "figure1", "figure2",
                                                     "tables", "manifest", "render", "pdf", "report"}}
    for module, rules in expected.items():
        path = run_copy / "scripts" / module
        original, stat = path.read_text(), path.stat()
        path.write_text(original + "\n# edited\n")
        planned = snakemake(run_copy, "--configfile", "configs/test.yaml", "-n", "report").stdout
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert set(re.findall(r"^(?:local)?rule (\w+):$", planned, flags=re.M)) == rules, module


def test_every_comparison_file_is_its_formula_of_the_files_it_names(test_run):
    formulas = {"ratio": lambda a, b: a / b, "reduction": lambda a, b: 100 * (1 - a / b),
                "change": lambda a, b: 100 * (a / b - 1), "points": lambda a, b: a - b}  # PROTOCOL.md's formulas
    value = lambda scope, name: read_metric(test_run / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    for c in CATALOGUE.comparisons:
        record = read_metric(test_run / f"results/metrics/comparison/{c.name}.json")
        assert record["value"] == pytest.approx(formulas[c.kind](value(*c.a), value(*c.b))), c.name
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


def _render(scope, name, **fields):
    from qrepro.metrics_io import render_method
    spec = CATALOGUE.specs[(scope, name)]
    declared = CATALOGUE.declared([spec.path])[spec.path]
    timing = spec.timing if isinstance(spec.timing, bool) else render_method({"method": spec.timing}, fields) == "True"
    return render_method(declared, {**spec.fields, **fields}), timing


def test_method_texts_on_the_branches_a_cpu_run_never_takes():
    """The real catalogue's texts where they depend on how the value was obtained (CUDA, a configured peak,
    random weights, QLoRA without checkpointing), against the sentences they must read as."""
    assert _render("device", "peak_flops", source="override") == (
        "Peak for MFU: evaluation.peak_flops in the config.", False)
    assert _render("device", "peak_flops", source="cuda", accelerator="H200", gpu="NVIDIA H200") == (
        "Peak for MFU: spec-sheet dense fp16/bf16 peak of H200 (NVIDIA H200).", False)
    measured, timing = _render("device", "peak_flops", source="measured", runs=9, size=2048, precision="fp32",
                               threads=2, outside_load=True, outside_cores=0.42, training=False, attempts=3,
                               reruns_allowed=2, threshold=0.1, contaminated=True)
    assert timing and measured.startswith("Peak for MFU: measured: the best of 9 timed runs of four 2048x2048 fp32 ")
    assert "averaged 0.42 cores (details.observed_load), and the time includes its effect. Reruns (timing.reruns): " \
           "a job whose observed outside load is above 0.1 cores (timing.outside_load_cores) redoes its timed work, " \
           "up to 2 more time(s); this value is the kept attempt's" in measured
    assert measured.endswith("CONTAMINATED: all 3 attempt(s) observed outside load, so the last is kept and marked, "
                             "and so is every number computed from it. No interval: the best of its runs, one job.")
    kept = dict(outliers=2, outlier_multiple=3, outlier_excess_s=1.5, outside_load=False, outside_cores=0.02,
                training=True, reruns_allowed=2, threshold=0.1, contaminated=False)
    assert "Attempt 2 was kept: the 1 before it observed outside load and were discarded" in \
        _render("qlora", "train_time_s", attempts=2, **kept)[0]
    assert "trains again from the same start" in _render("qlora", "train_time_s", attempts=1, **kept)[0]
    assert _render("full", "peak_train_memory_mb", cuda=True)[0].startswith(
        "Peak memory of trainer.train(): torch.cuda.max_memory_allocated during the block")
    padding = dict(samples=100, max_length=512, scored_tokens=51100, padding_tokens=40880, padding_percent=80.0)
    ppl, _ = _render("base", "perplexity_paper", dtype="fp16", init="random", **padding)
    assert ppl.endswith("scored: 80.0% of the 51100 scored tokens are padding (fp16). Random weights (model.init: "
                        "random): not meaningful.")
    assert "not meaningful" not in _render("base", "perplexity_paper", dtype="fp16", init="pretrained", **padding)[0]
    executed = lambda **f: _render("qlora", "flops_per_step_executed", **{"counted_instead": "", **f})[0]  # noqa: E731
    assert "first layer's q/k/v inputs need no gradient" in executed(variant="qlora", gradient_checkpointing=False)
    assert "recomputed by gradient checkpointing" in executed(variant="qlora", gradient_checkpointing=True)
    assert "q/k/v" not in executed(variant="full", gradient_checkpointing=False)
    fused = executed(variant="qlora", gradient_checkpointing=True, counted_instead="decoder layers of qkv_proj, ...")
    assert fused.startswith("Counted, not by formula") and "(decoder layers of qkv_proj, ...)" in fused
    assert "Analytic" not in fused
    generation, _ = _render("qlora", "tokens_per_s", new_tokens=50, dtype="fp16", cuda=False, threads=2,
                            repetitions=3, prompts=3, models=3, outside_load=False, outside_cores=0.01, training=False,
                            attempts=2, reruns_allowed=2, threshold=0.1, contaminated=False)
    assert "Median over the 9 runs" in generation
    assert ("a job whose observed outside load is above 0.1 cores (timing.outside_load_cores) redoes its timed work, "
            "up to 2 more time(s)") in generation
    assert "Attempt 2 was kept: the 1 before it observed outside load and were discarded" in generation
    assert ("in fp16 on CPU (2 thread(s)), the 3 models loaded in one job and timed in 3 interleaved rounds after one "
            "warm-up run per model and prompt: in each round every model runs each of the paper's 3 prompts once") \
        in generation
    assert _render("data_card", "pretrain_rows")[0].endswith(" null when the source has no pretraining split.")
    assert _render("data_card", "train_rows")[0] == "Rows of the split as loaded, empty rows included."


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


def _cells():
    """(table number, row label, column, source, format, paper id or None) of every table cell."""
    for table in CATALOGUE.tables:
        for row, column, spec in table.cells():
            scale = f"*{spec.text.split('|')[0].split('*')[1]}" if spec.scale else ""
            yield table.number, row.label, column, spec.source + scale, spec.form, spec.paper_id


def test_a_paper_value_stands_only_beside_the_same_quantity_measured_the_same_way():
    """A cell may show a paper value only if its file is measured the paper's way (paper_way in the catalogue; a
    comparison is, when both its inputs are) and, for a derived number, with the formula the paper used for it."""
    wrong = []
    for number, label, column, source, _, paper_id in _cells():
        if paper_id is None or source.startswith("hp:"):
            continue
        spec = CATALOGUE.specs[catalogue_cell(source.split("*")[0])]
        formula = PAPER[paper_id].get("formula")
        comparison = next((c for c in CATALOGUE.comparisons if c.name == spec.name), None)
        if not spec.paper_way or (formula or comparison) and (comparison is None or comparison.formula != formula):
            wrong.append(f"Table {number}, {label} / {column}: {source} beside {paper_id}")
    assert not wrong, "\n".join(wrong)


def test_the_pairing_check_catches_a_cross_method_pair():
    """The check above, on the pairs issue 18 found: token-level perplexity beside the paper's protocol figure, a
    change beside a reduction, and model-FLOPs MFU beside the paper protocol's."""
    spec = CATALOGUE.specs[("full", "perplexity_token")]
    assert not spec.paper_way
    change = next(c for c in CATALOGUE.comparisons if c.name == "training_slowdown_percent_total")
    assert change.formula == "change" != PAPER["t12_time_improvement"]["formula"]
    assert not CATALOGUE.specs[("comparison", "mfu_difference_points_analytic")].paper_way


UNITS = {"MB": ("MB (1024^2 bytes)", None), "%": ("%", None), "x": ("x", None), "s": ("s", None),
         "TFLOPs per step": ("FLOPs", "1e-12"), "GFLOPs per token": ("FLOPs/token", "1e-9"),
         "TFLOP/s": ("TFLOP/s", None), "points": ("percentage points", None), "tokens/s": ("tokens/s", None),
         "% or points": (("%", "percentage points"), None)}


def _stated_unit(text: str):
    """The unit a row label or column header states in its last parentheses, if it is one of UNITS."""
    import re as regex
    found = regex.search(r"\(([^()]*)\)\s*$", text)
    return found[1] if found and found[1] in UNITS else None


def test_every_cell_has_the_unit_its_column_or_row_states():
    """A column header's unit applies to its cells, else the row label's; the file's catalogue unit (and the
    scale the cell applies) must be that unit."""
    wrong = []
    for number, label, column, source, _, _ in _cells():
        stated = _stated_unit(column) or _stated_unit(label)
        if stated is None or source.startswith("hp:"):
            continue
        unit, scale = UNITS[stated]
        key, _, cell_scale = source.partition("*")
        actual = CATALOGUE.specs[catalogue_cell(key)].unit
        if actual not in (unit if isinstance(unit, tuple) else (unit,)) or (cell_scale or None) != scale:
            wrong.append(f"Table {number}, {label} / {column}: {source} is {actual!r} x {cell_scale or 1}, "
                         f"the header says {stated}")
    assert not wrong, "\n".join(wrong)
    stated_cells = sum(1 for _, label, column, source, _, _ in _cells() if _stated_unit(column) or _stated_unit(label))
    assert stated_cells > 80  # most cells state their unit
