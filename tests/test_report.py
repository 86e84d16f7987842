"""The report: every table and figure, values traceable to metric files, escaping, incremental rebuilds."""
import json
import re

import pytest

from conftest import PAPER, ROOT, pdf_text, snakemake
from qrepro.metrics_io import CONTAMINATED_MARK, read_metric
from qrepro.report.numbers import fmt
from qrepro.report.render import text_reads

CAPTIONS = {1: "Dataset statistics", 2: "Model architecture parameters", 3: "Hyperparameters for standard and QLoRA",
            4: "QLoRA configuration details", 5: "Model size", 6: "Parameter efficiency",
            7: "FLOPs per optimizer step", 8: "Mean FLOPs utilization", 9: "Training performance",
            10: "Perplexity evaluation on the test set", 11: "Inference speed",
            12: "Complete performance metrics comparison", 14: "Beyond the paper, published models"}
# the report's figures: one caption file each (templates/figure<n>.rst); a sweep's figure only after `snakemake sweep`
FIGURES = len(list((ROOT / "templates").glob("figure*.rst")))


def _sample_values(run):
    m = lambda scope, name: read_metric(run / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    return [fmt(m("architecture", "total_params"), "int"), fmt(m("qlora", "trainable_params"), "int"),
            fmt(m("full", "perplexity_token"), "f2"), fmt(m("qlora", "perplexity_paper"), "f2"),
            fmt(m("base", "perplexity_token"), "f2"), fmt(m("full", "tokens_per_s"), "f2"),
            fmt(m("comparison", "compression_ratio_memory"), "f2"), fmt(m("qlora", "train_time_s"), "f2"),
            fmt(m("qlora", "step_time_s"), "f4"), fmt(m("comparison", "inference_slowdown_x"), "f2"),
            fmt(m("comparison", "flops_counted_over_executed_qlora"), "f4")]


def test_pdf_has_every_table_figure_and_metric_value(test_run):
    text = re.sub(r"\s+", " ", pdf_text(test_run / "report/report.pdf"))
    for number, caption in CAPTIONS.items():
        assert f"Table {number}: {caption}" in text, f"Table {number} missing from the PDF"
    assert all(f"Figure {n}:" in text for n in range(1, FIGURES + 1))
    for value in _sample_values(test_run):
        assert value in text, value
    assert "paper architecture, arithmetic" in text and "(this run, not judged)" in text
    assert "No GPU reference run is present" in text


def test_html_has_every_table_figure_and_metric_value(test_run):
    html = (test_run / "report/report.html").read_text()
    for number, caption in CAPTIONS.items():
        assert f'id="T_table{number}"' in html and f"Table {number}: {caption}" in html
    assert html.count('src="data:image/png;base64,') == FIGURES
    # self-contained: figures inlined; the only links are to this page or to files of the checkout (../results/...)
    assert not re.search(r'(src|href)="(?!data:|#|\.\./(results|paper|reference|configs)/)', html), "an outside link"
    for value in _sample_values(test_run):
        assert value in html, value


def test_tables_are_written_three_ways_with_sources(test_run):
    import pandas as pd
    for number in CAPTIONS:
        stem = test_run / f"results/tables/table{number:02d}"
        assert "\\toprule" in (stem.with_suffix(".tex")).read_text()
        audit = pd.read_csv(stem.with_suffix(".csv"))
        assert len(audit) > 0 and audit["source"].notna().all()
    table5 = pd.read_csv(test_run / "results/tables/table05.csv")
    row = lambda label: table5[table5["row"] == label].iloc[0]  # noqa: E731
    formula = row("Compression, paper formula (x)")  # measured the paper's way: beside its 3.82
    expected = read_metric(test_run / "results/metrics/comparison/compression_ratio_paper_formula.json")["value"]
    assert formula["reproduced"] == pytest.approx(expected) and formula["paper"] == PAPER["t5_compression"]
    assert formula["ratio"] == pytest.approx(expected / PAPER["t5_compression"])
    assert formula["source"] == "results/metrics/comparison/compression_ratio_paper_formula.json"
    memory = row("Compression, measured in memory (x)")  # measured another way: no paper value beside it
    assert pd.isna(memory["paper"]) and pd.isna(memory["ratio"]) and memory["source"].endswith("compression_ratio_memory.json")


def test_special_characters_in_a_metric_are_shown_literally(run_copy):
    path = run_copy / "results/metrics/full/precision.json"
    record = json.loads(path.read_text())
    record["value"] = "<b>50%_&"
    path.write_text(json.dumps(record))
    snakemake(run_copy, "--configfile", "configs/test.yaml", "--cores", "2", "report")
    assert "<b>50%_&" in pdf_text(run_copy / "report/report.pdf")
    html = (run_copy / "report/report.html").read_text()
    assert "&lt;b&gt;50%_&amp;" in html and "<b>50%_&" not in html


def test_injection_in_a_user_string_stays_literal(run_copy):
    label = r"<script>alert(1)</script> \input{/etc/passwd}"
    snakemake(run_copy, "--configfile", "configs/test.yaml", "--cores", "1", "report", "--config", f"run_label={label}")
    text = pdf_text(run_copy / "report/report.pdf")
    assert "<script>alert(1)</script>" in text and r"\input{/etc/passwd}" in text
    assert "root:x:0:0" not in text
    html = (run_copy / "report/report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html


def _planned(run):
    planned = snakemake(run, "--configfile", "configs/test.yaml", "-n", "report").stdout
    return set(re.findall(r"^(?:local)?rule (\w+):", planned, re.M))


def test_editing_a_template_or_the_style_reruns_only_rendering(run_copy):
    # Snakemake skips a touch that leaves a file's content unchanged; a real edit re-runs its users.
    with open(run_copy / "templates/report.html.j2", "a") as handle:
        handle.write("{# edited #}\n")
    assert _planned(run_copy) == {"render", "pdf", "report"}
    with open(run_copy / "templates/plot.mplstyle", "a") as handle:
        handle.write("# edited\n")
    figures = {f"figure{n}" for n in range(1, FIGURES + 1)}  # every figure reads the style
    assert _planned(run_copy) == figures | {"manifest", "render", "pdf", "report"}


def test_html_loads_cleanly_in_headless_chromium(test_run):
    import shutil
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are needed (bash install.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get((test_run / "report/report.html").as_uri())
        tables = driver.execute_script("return document.querySelectorAll('table.paper-table').length")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    finally:
        driver.quit()
    assert tables == len(CAPTIONS)
    assert images == [True] * FIGURES
    assert errors == []


def test_snakemake_own_report_registers_tables_and_figures(test_run, tmp_path):
    out = tmp_path / "provenance.html"
    snakemake(test_run, "--configfile", "configs/test.yaml", "--report", str(out))
    html = out.read_text()
    assert all(f"figure{n}.png" in html for n in range(1, FIGURES + 1)) and "table14.html" in html


def test_the_pdf_keeps_every_line_on_the_page(test_run):
    """latexmk's log: no box overfull by more than 20 pt (a line, a hash or a table running past the margin)."""
    log = (test_run / "report/report.log").read_text(errors="replace")
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]
    assert [w for w in widths if w > 20] == [], sorted(widths)[-5:]


def test_every_number_in_the_html_tables_names_its_source(test_run):
    """A number in a table cell links to its metric file (or names its paper value, or both for a ratio) with a title
    that says which; at least 98% of the numeric cells do, and the linked files exist."""
    import html as html_module
    page = (test_run / "report/report.html").read_text()
    tables = re.findall(r'<table[^>]*class="paper-table".*?</table>', page, re.S)
    cells = [c for table in tables for c in re.findall(r"<td [^>]*class=\"data[^\"]*\"[^>]*>(.*?)</td>", table, re.S)]
    numeric = [c for c in cells if re.search(r"\d", re.sub(r"<[^>]+>", "", c))]
    sourced = [c for c in numeric if re.search(r'<(a|span) class="num[^"]*"[^>]* title="[^"]+"', c)]
    assert len(numeric) > 150 and len(sourced) >= 0.98 * len(numeric), (len(sourced), len(numeric))
    for href in set(re.findall(r'<a class="num" href="\.\./([^"]+)"', page)):
        assert (test_run / html_module.unescape(href)).is_file(), href
    prose_links = re.findall(r'<p>.*?</p>', page, re.S)
    assert sum(p.count('class="num"') for p in prose_links) > 40  # the prose's numbers link too


def test_every_number_of_a_claim_note_and_the_data_card_links_to_its_source(test_run):
    """Each claim's note links as many numbers as its evidence text in paper/claims.yaml shows (v.f and pv.f calls),
    each to a file that holds that number; every count in the data card links to its data_card file."""
    import html as html_module
    import yaml
    page = (test_run / "report/report.html").read_text()
    claims = yaml.safe_load((test_run / "paper/claims.yaml").read_text())["claims"]
    notes = dict(re.findall(r"<li>Claim (\d+): (.*?)</li>", page, re.S))
    assert len(notes) == len(claims)
    for number, claim in enumerate(claims, 1):
        expected = [args[0] for _, method, args in text_reads(claim["evidence"]) if method == "f"]  # v.f, pv.f
        # a directional claim's note adds one linked number per comparison it names (claims.yaml direction), and
        # its interval's level and two ends where the file has one
        for name in claim.get("direction", {}).get("comparisons", {}):
            record = read_metric(test_run / f"results/metrics/comparison/{name}.json")
            expected += [name] * (4 if "interval" in record else 1)
        links = re.findall(r'<a class="num[^"]*" href="\.\./([^"]+)" title="([^"]*)">([^<]+)</a>', notes[str(number)])
        assert len(links) == len(expected), (number, len(links), expected)
        for href, title, text in links:
            if href.startswith("results/"):
                record = read_metric(test_run / html_module.unescape(href))
                interval = record.get("interval", {})
                shown = [record["value"]] + [interval[k] for k in ("low", "high") if k in interval] + (
                    [100 * interval["level"]] if interval else [])
                number_text = text.replace(",", "").rstrip("%x×" + CONTAMINATED_MARK)  # a contaminated one is marked
                decimals = len(number_text.partition(".")[2])
                # the file's value (or its interval's end or level), rounded as shown
                assert any(float(number_text) == pytest.approx(v, abs=0.5 * 10 ** -decimals + 1e-12) for v in shown), (
                    number, href, text, shown)
                assert "Method:" in title, (number, href, title)  # the one link helper: method and inputs
    card = re.search(r'<table class="data-card">(.*?)</table>', page, re.S)[1]
    for split, rows, empty, characters in re.findall(
            r'<tr><td class="text">(\w+)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>', card):
        for cell, name in ((rows, "rows"), (empty, "empty_rows"), (characters, "characters")):
            href = re.search(r'href="\.\./([^"]+)"', cell)
            assert href and href[1] == f"results/metrics/data_card/{split}_{name}.json", (split, name, cell)
            text = re.sub(r"<[^>]+>", "", cell)
            assert int(text.replace(",", "")) == read_metric(test_run / href[1])["value"]


@pytest.mark.slow
def test_table12_improvement_is_positive_where_qlora_is_better_in_every_row(test_run):
    """One sign convention per column: from the two reproduced values of each row, QLoRA is better when its number is
    lower (parameters, size, FLOPs, time, perplexity) or higher (MFU, tokens per second); the Improvement has that
    sign. Perplexity's is (s - q) / s of the files, recomputed here."""
    import pandas as pd
    audit = pd.read_csv(test_run / "results/tables/table12.csv")
    checked = 0
    for row, cells in audit.groupby("row"):
        by_column = cells.set_index("column")
        if "Improvement (% or points)" not in by_column.index or "Standard FT" not in by_column.index:
            continue
        s, q = by_column.loc["Standard FT", "reproduced"], by_column.loc["QLoRA", "reproduced"]
        higher_is_better = row.startswith(("MFU", "Tokens per second"))
        better = (q > s) if higher_is_better else (q < s)
        improvement = by_column.loc["Improvement (% or points)", "reproduced"]
        if s != q:
            assert (improvement > 0) == better, (row, s, q, improvement)
            checked += 1
    assert checked >= 8
    for protocol in ("paper", "token"):
        value = lambda v: read_metric(test_run / f"results/metrics/{v}/perplexity_{protocol}.json")["value"]  # noqa: E731
        row = audit[audit["row"] == f"Perplexity, {'paper protocol' if protocol == 'paper' else 'token-level'}"]
        shown = row[row["column"] == "Improvement (% or points)"]["reproduced"].iloc[0]
        assert shown == pytest.approx(100 * (value("full") - value("qlora")) / value("full"))


@pytest.mark.slow
def test_no_cell_of_the_pdf_shows_latex_syntax(test_run):
    """No table cell's LaTeX escapes a caret, dollar or backslash into print; the PDF shows no caret exponent."""
    for tex in sorted((test_run / "results/tables").glob("table*.tex")):
        assert not re.search(r"\\textasciicircum|\\\$|\\textbackslash", tex.read_text()), tex.name
    text = pdf_text(test_run / "report/report.pdf")
    assert not re.search(r"10\s*\^", text) and "ˆ" not in text


@pytest.mark.slow
def test_every_ratio_cell_links_to_the_file_it_divides(test_run):
    """In the HTML tables a Ratio cell links to the same file as the Reproduced cell of its row and column, and its
    title gives the formula with that file's value and the paper value's entry."""
    import html as html_module
    import pandas as pd
    page = (test_run / "report/report.html").read_text()
    checked = 0
    for number in range(1, 13):
        audit = pd.read_csv(test_run / f"results/tables/table{number:02d}.csv")
        table = re.search(rf'<table id="T_table{number}".*?</table>', page, re.S)[0]
        if ">Ratio<" not in table:  # a wide table leaves the ratios out (metrics.yaml: ratios: false)
            continue
        for _, line in audit[audit["ratio"].notna()].iterrows():
            source = line["source"]
            mark = CONTAMINATED_MARK if line["contaminated"] else ""  # a ratio from a contaminated time is marked
            links = re.findall(rf'<a class="num" href="\.\./{re.escape(source)}" title="([^"]*)">([^<]*×{mark})</a>',
                               table)
            assert links, (number, line["row"], line["column"], mark)
            titles = [html_module.unescape(t) for t, _ in links]
            paper = float(line["paper"])
            shown = {repr(paper), repr(int(paper))} if paper.is_integer() else {repr(paper)}
            assert any(any(f"/ {p} =" in t for p in shown) and line["paper_id"] in t for t in titles), (number, titles)
            checked += 1
    assert checked > 15
