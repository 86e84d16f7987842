"""Tables from their catalogue specs (qrepro.catalogue.TableSpec): every cell names a declared metric, a paper value stands only beside the same quantity measured the same way, units agree; catalogue texts in the prose language."""

import jinja2
import pytest

from conftest import ROOT
from qrepro import catalogue
from qrepro.metrics_io import MetricStore
from qrepro.paper import load_paper_values
from qrepro.report.numbers import PaperValues, Values
from qrepro.report.render import render_text
from qrepro.report.tables import Sources, build_table


CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")


PAPER = load_paper_values(str(ROOT / "paper/paper_values.yaml"))


def test_every_table_cell_names_a_declared_metric_and_a_known_paper_value():
    for table in CATALOGUE.tables:
        for row, column, spec in table.cells():
            assert column in table.columns, (table.number, row.label)
            assert spec.paper_id is None or spec.paper_id in PAPER, spec.text
            assert spec.variant or spec.metric_key in CATALOGUE.specs, spec.text


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
