"""The report's tables cell by cell, on small in-memory runs: where a published value stands (Paper, Notebook, or
nowhere), what a Ratio cell links to and says, and that no cell puts LaTeX syntax into the PDF."""
import html
import re

import pytest

from conftest import ROOT
from qrepro.metrics_io import MetricStore
from qrepro.paper import load_paper_values
from qrepro.catalogue import TableSpec
from qrepro.report.tables import SUBCOLUMNS, Sources, build_table, html_cell, latex_cell

PAPER_VALUES = load_paper_values(ROOT / "paper/paper_values.yaml")


def _store(records: dict) -> MetricStore:
    """A run's metric files: {(scope, metric): (value, details)}, each with a method and inputs to be titled with."""
    store = MetricStore()
    for (scope, metric), (value, details) in records.items():
        store.records[(scope, metric)] = {"value": value, "unit": "%", "method": f"method of {scope}/{metric}",
                                          "inputs": [f"results/in/{scope}.json"], "details": details}
        store.paths[(scope, metric)] = f"results/metrics/{scope}/{metric}.json"
    return store


def _table(rows: list, columns=("Value",), store=None, ratios=True):
    spec = {"number": 99, "caption": "test", "columns": list(columns), "rows": rows, "ratios": ratios}
    return build_table(TableSpec.from_data(spec), Sources(store), PAPER_VALUES)


def _links(text: str) -> list[tuple[str, str, str]]:
    """(href, title, text) of each link of an HTML cell."""
    return [(html.unescape(h), html.unescape(t), html.unescape(x))
            for h, t, x in re.findall(r'<a class="[^"]*" href="\.\./([^"]+)" title="([^"]*)">([^<]*)</a>', text)]


def test_a_ratio_cell_links_to_the_file_it_divides_and_titles_itself_with_the_formula():
    store = _store({("comparison", "compression_ratio_paper_formula"): (3.5, {})})
    table = _table([["Compression", {"Value": "comparison/compression_ratio_paper_formula|f2|t5_compression"}]],
                   store=store)
    frame = table.display_frame(PAPER_VALUES, html_cell)
    (href, title, text), = _links(frame[("Value", "Ratio")].iloc[0])
    assert href == "results/metrics/comparison/compression_ratio_paper_formula.json"
    assert text == f"{3.5 / 3.82:.3g}×"  # the ratio, computed here from the file's value and the paper's
    assert "reproduced / published = 3.5 / 3.82" in title and "t5_compression" in title
    assert "method of comparison/compression_ratio_paper_formula" in title and "Inputs: results/in/comparison.json" in title
    (href, title, _), = _links(frame[("Value", "Reproduced")].iloc[0])  # the value: its method and inputs
    assert href.endswith("compression_ratio_paper_formula.json") and "Method: method of" in title and "Inputs:" in title
    (href, title, text), = _links(frame[("Value", "Paper")].iloc[0])
    assert href == "paper/paper_values.yaml" and text == "3.82" and "t5_compression" in title
    latex = table.display_frame(PAPER_VALUES, latex_cell)[("Value", "Ratio")].iloc[0]
    assert latex.startswith(r"\href{../results/metrics/comparison/compression_ratio_paper_formula.json}")


def test_a_value_only_the_notebook_printed_stands_under_notebook_not_paper():
    store = _store({("paper_structure", "size_qlora_mb_notebook"): (1010.48, {}),
                    ("paper_structure", "size_fp16_mb_paper"): (2098.18, {})})
    table = _table([["Notebook's count", {"Value": "paper_structure/size_qlora_mb_notebook|f2|notebook_qlora_size_mb"}],
                    ["Formula", {"Value": "paper_structure/size_fp16_mb_paper|f2|t5_fp16_mb"}]], store=store)
    frame = table.display_frame(PAPER_VALUES)
    assert list(frame.columns.get_level_values(1)) == [s for s in SUBCOLUMNS]
    assert list(frame[("Value", "Notebook")]) == ["1,010.48", "—"]  # paper_values.yaml: table notebook
    assert list(frame[("Value", "Paper")]) == ["—", "2,098.18"]
    audit = table.audit_frame(PAPER_VALUES)
    assert list(audit["published_by"]) == ["notebook", "paper"]
    title = _links(table.display_frame(PAPER_VALUES, html_cell)[("Value", "Notebook")].iloc[0])[0][1]
    assert "the authors' notebook, not the paper" in title


@pytest.mark.parametrize("peak, beside", [(150.8e9, False), (35.58e12, True)])
def test_the_paper_protocol_mfu_stands_beside_the_papers_only_with_the_notebooks_peak(peak, beside):
    """PROTOCOL.md: the paper divides by its notebook's 35.58 TFLOP/s; an MFU divided by another peak is another
    quantity, so neither the paper's MFU nor a ratio stands beside it (the achieved TFLOP/s, with no peak, do)."""
    store = _store({("full", "mfu_paper"): (1.56, {"peak_flops": peak}),
                    ("full", "achieved_tflops_paper"): (0.0024, {})})
    table = _table([["Standard", {"MFU (%)": "full/mfu_paper|f2|t8_mfu_full",
                                  "Achieved": "full/achieved_tflops_paper|f4|t8_achieved_full"}]],
                   columns=("MFU (%)", "Achieved"), store=store)
    audit = table.audit_frame(PAPER_VALUES).set_index("column")
    assert bool(audit.loc["MFU (%)", "paper"] == 13.18) is beside
    assert bool(audit.loc["MFU (%)", "ratio"] == pytest.approx(1.56 / 13.18)) is beside
    assert audit.loc["Achieved", "paper"] == 4.69  # no peak in it: always beside the paper's
    assert (table.rows[0][1]["MFU (%)"].withheld is None) is beside


def test_no_cell_puts_latex_syntax_into_the_pdf():
    """A printed paper value with an exponent (Table 3's learning rates) is set as a superscript, never as an
    escaped caret; no cell's LaTeX holds an escaped caret, dollar or backslash."""
    store = _store({})
    sources = Sources(store, {"full": {"learning_rate": 2e-5}, "qlora": {"learning_rate": 2e-4}},
                      {"full": "results/train/full/hyperparameters.json", "qlora": "results/train/qlora/hyperparameters.json"})
    spec = {"number": 3, "caption": "t", "columns": ["Standard FT", "QLoRA"],
            "rows": [["Learning Rate", {"Standard FT": "hp:full/learning_rate|sci|t3_lr_full",
                                        "QLoRA": "hp:qlora/learning_rate|sci|t3_lr_qlora"}]]}
    frame = build_table(TableSpec.from_data(spec), sources, PAPER_VALUES).display_frame(PAPER_VALUES, latex_cell)
    cells = [str(c) for c in frame.to_numpy().ravel()]
    assert any(r"10\textsuperscript{\textminus}\textsuperscript{5}" in c for c in cells), cells
    for c in cells:
        assert not re.search(r"\\textasciicircum|\\\$|\\textbackslash", c), c
