"""The GPU reference-run section, judged from a small fixture reference built here, and a planted wrong value
that must change the report and the verdicts."""
import html
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import PAPER, ROOT, pdf_text, snakemake
from qrepro import catalogue
from qrepro.derived import comparison_records
from qrepro.metrics_io import MetricStore, metric_record, read_metric, write_metrics, write_record
from qrepro.paper import load_paper_values
from qrepro.report.claims import load_claims

NAME = "h200-paper-arch"
CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")
ARCHITECTURE = ["total_params", "hidden_size", "num_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size", "tie_word_embeddings"]
# A reference at the paper's architecture on a GPU. Values are the fixture's own, chosen so that the training
# slowdown (37.3%), the MFU ratio and the inference slowdown (3.1x) reproduce.
FIXTURE = {("full", "train_time_s"): 1000.0, ("qlora", "train_time_s"): 1373.0,
           # paper-protocol MFU is FLOPs x steps / time: the paper formula's 3.83x FLOP ratio times 1373 / 1000
           ("full", "mfu_paper"): PAPER["t8_mfu_full"], ("qlora", "mfu_paper"): PAPER["t8_mfu_qlora"],
           ("full", "inference_time_paper_s"): 1.0, ("qlora", "inference_time_paper_s"): 3.1,
           ("full", "peak_train_memory_mb"): 21600.0, ("qlora", "peak_train_memory_mb"): 8400.0}


def _set(path, value=None, details=None):
    record = json.loads(path.read_text())
    if value is not None:
        record["value"] = value
    if details:
        record["details"] = {**record.get("details", {}), **details}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _recompute_comparisons(metrics_dir):
    """What the comparisons rules would write from the planted files, through the catalogue as they do."""
    paths = [str(p) for p in metrics_dir.glob("*/*.json") if p.parent.name != "comparison"]
    store = MetricStore.load(paths)
    declared = {str(metrics_dir / Path(path).relative_to("results/metrics")): spec
                for path, spec in CATALOGUE.declared(CATALOGUE.outputs("comparisons")
                                                     + CATALOGUE.outputs("architecture_comparisons")).items()}
    write_metrics(declared, comparison_records(store, CATALOGUE.comparisons, CATALOGUE.radar_points))


def make_reference(run, values=FIXTURE):
    """reference/<NAME>/ as `snakemake reference` writes it, from a finished test run's metric files."""
    folder = run / "reference" / NAME
    shutil.copytree(run / "results/metrics", folder / "metrics")
    metrics = folder / "metrics"
    for name in ARCHITECTURE:
        _set(metrics / "architecture" / f"{name}.json", read_metric(metrics / "paper_architecture" / f"{name}.json")["value"])
    _set(metrics / "device/peak_flops.json", 989e12, {"cuda": True, "gpu": "NVIDIA H200"})
    for (scope, name), value in values.items():
        _set(metrics / scope / f"{name}.json", value)
    _recompute_comparisons(metrics)
    (folder / "provenance.json").write_text(json.dumps({
        "command": "snakemake --cores 16 reference --configfile configs/paper.yaml configs/paper-arch.yaml",
        "git_commit": "0" * 40, "gpu": "NVIDIA H200", "driver": "580.00", "packages": [["torch", "2.11.0+cu130"]],
        "run": {"init": "random", "model_source": "pretrain", "data_source": "synthetic", "paper_data": False,
                "paper_recipe": True}}))
    return folder


STATEMENTS = {c["id"]: c["statement"] for c in load_claims(str(ROOT / "paper/claims.yaml"),
                                                             load_paper_values(ROOT / "paper/paper_values.yaml"))}


def _claims(html_text):
    """{claim id: (verdict, basis)} of the report's claims table, as a reader sees the text."""
    tables = re.findall(r'<table class="claims">(.*?)</table>', html_text, re.S)  # not the whole page: it is long
    rows = re.findall(r"<tr[^>]*><td>\d+</td><td class=\"text\">(.*?)</td>.*?<td class=\"verdict-[a-z-]+\">(.*?)</td>"
                      r"<td class=\"text\">(.*?)</td>", "".join(tables), re.S)
    by_statement = {html.unescape(statement): (html.unescape(verdict), html.unescape(basis))
                    for statement, verdict, basis in rows}
    return {key: by_statement[statement] for key, statement in STATEMENTS.items() if statement in by_statement}


def test_reference_section_judges_ratio_claims_and_a_planted_value_changes_them(run_copy):
    reference = make_reference(run_copy)
    args = ["--configfile", "configs/test.yaml", "--cores", "2", "report", "--config", f"reference_run={NAME}"]
    snakemake(run_copy, *args)
    page = (run_copy / "report/report.html").read_text()
    claims = _claims(page)
    basis = f"GPU reference run {NAME}"
    assert len(claims) == 7
    assert claims["training_slowdown"] == ("reproduced", basis)
    assert claims["inference_slowdown"] == ("reproduced", basis)
    assert claims["mfu"] == ("reproduced", basis)  # the paper formula's FLOP ratio times 1373 / 1000
    assert claims["compression"][1] == "paper architecture, arithmetic (the layout bitsandbytes loads)"
    # the verdict names the value it judges (the paper protocol's, measured as the published one)
    assert claims["perplexity_increase"] == ("not comparable (judging the paper protocol value)", "none at hand")
    assert 'id="T_table13"' in page and f"Table 13: Paper scale on a GPU: reference run {NAME}" in page
    text = re.sub(r"\s+", " ", pdf_text(run_copy / "report/report.pdf"))
    assert f"Table 13: Paper scale on a GPU: reference run {NAME}" in text and "1,373.0" in text

    # plant a doubled step time in this run, and a doubled QLoRA training time in the reference
    step = run_copy / "results/metrics/qlora/step_time_s.json"
    planted_step = 2 * read_metric(step)["value"]
    _set(step, planted_step)
    _set(reference / "metrics/qlora/train_time_s.json", 2 * 1373.0)
    _set(reference / "metrics/qlora/mfu_paper.json", PAPER["t8_mfu_qlora"] / 2)  # the same clock halves QLoRA's MFU
    _recompute_comparisons(reference / "metrics")
    snakemake(run_copy, *[a if a != "report" else "html" for a in args])
    page = (run_copy / "report/report.html").read_text()
    claims = _claims(page)
    assert claims["training_slowdown"] == ("not reproduced", basis)
    assert claims["mfu"][0] == "not reproduced"  # decided by the same clock
    assert "174.6" in page  # the reference's new slowdown: 100 x (2746 / 1000 - 1)
    slowdown = read_metric(run_copy / "results/metrics/comparison/training_slowdown_percent_per_step.json")["value"]
    full_step = read_metric(run_copy / "results/metrics/full/step_time_s.json")["value"]
    assert slowdown == pytest.approx(100 * (planted_step / full_step - 1))
    assert f"{slowdown:.1f}" in page and f"{planted_step:.4f}" in page
    mfu = read_metric(run_copy / "results/metrics/qlora/mfu_analytic.json")
    assert mfu["details"]["achieved_flops"] == pytest.approx(
        read_metric(run_copy / "results/metrics/qlora/flops_per_step_analytic.json")["value"] / planted_step)


def test_write_reference_copies_a_gpu_run_and_refuses_a_cpu_run(tmp_path):
    from qrepro.report.reference import write_reference
    metrics = tmp_path / "results/metrics"
    for scope, name, value in [("device", "peak_flops", 989e12), ("full", "train_time_s", 12.5)]:
        write_record(metrics / scope / f"{name}.json", metric_record(name, scope, value, unit="", method="a method text.",
                                                                    inputs=[], details={"cuda": True, "gpu": "NVIDIA H200"}))
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks/finetune_full.tsv").write_text("s\n12.9\n")
    files = sorted(str(p) for p in metrics.rglob("*.json"))
    origin = {"command": "snakemake reference", "git_commit": "abc", "config_digest": "d", "run": {"init": "random"}}
    write_reference(str(tmp_path / "reference/h200-x"), files, str(tmp_path / "manifest.json"),
                    str(tmp_path / "benchmarks"), origin)
    copied = tmp_path / "reference/h200-x"
    assert read_metric(copied / "metrics/full/train_time_s.json")["value"] == 12.5
    provenance = json.loads((copied / "provenance.json").read_text())
    assert provenance["gpu"] == "NVIDIA H200" and provenance["command"] == "snakemake reference"
    assert dict(provenance["packages"])["torch"].startswith("2.") and (copied / "benchmarks/finetune_full.tsv").exists()

    _set(metrics / "device/peak_flops.json", details={"cuda": False})
    with pytest.raises(RuntimeError, match="a reference run is a GPU run"):
        write_reference(str(tmp_path / "reference/cpu"), files, str(tmp_path / "manifest.json"),
                        str(tmp_path / "benchmarks"), origin)
    assert not (tmp_path / "reference/cpu").exists()
