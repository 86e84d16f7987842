"""The single context both report templates render: numbers as formatted strings, tables, figures,
claims, deviations and provenance. Every number here comes from a file under results/."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

from markupsafe import Markup

from qrepro.metrics_io import MetricStore, read_json, sha256
from qrepro.hardware import is_papers_gpu
from qrepro.report.numbers import PaperValues, Values
from qrepro.report.markup import RawLatex
from qrepro.report.summary import summary
from qrepro.runlog import package_versions

REPORTED_PACKAGES = ["torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "tokenizers", "snakemake",
            "jinja2", "matplotlib", "pandas"]


class ManifestError(ValueError):
    pass


def verify_manifest(manifest_path: str) -> dict[str, str]:
    """Every file the manifest lists must still have the SHA-256 recorded when it was written."""
    manifest = read_json(manifest_path)
    for path, digest in manifest["sha256"].items():
        if not Path(path).exists():
            raise ManifestError(f"{path} is listed in {manifest_path} but missing")
        if sha256(path) != digest:
            raise ManifestError(f"{path} changed after {manifest_path} was written (SHA-256 mismatch): stale or edited")
    return manifest["sha256"]


def run_description(run: dict, m: MetricStore) -> dict:
    """The run's settings with what its files say about the device and precisions (the prose says it in words)."""
    hardware = m.record("device", "peak_flops")["details"]
    return {**run, "cuda": bool(hardware["cuda"]), "gpu": hardware.get("gpu"),
            "cpu_model": hardware["hardware"].get("cpu_model", "unknown model"),
            "cpu_count": hardware["hardware"]["cpu_count"], "cpu_bf16": hardware["hardware"]["cpu_bf16"],
            "precision_full": m.value("full", "precision"), "precision_qlora": m.value("qlora", "precision")}


def data_card(m: MetricStore) -> dict:
    """What data and tokenizer the run measured, from results/metrics/data_card (rule data_card)."""
    V = lambda name: m.value("data_card", name)  # noqa: E731
    # the numbers are printed by the prose (data_card_number), which links them to their files in HTML
    splits = [{"split": split, "sha256": V(f"{split}_sha256")}
              for split in ("train", "validation", "test", "pretrain") if V(f"{split}_rows") is not None]
    return {"source": V("data_source"), "location": V("data_location"), "revision": V("data_revision") or "none",
            "splits": splits, "tokenizer_name": V("tokenizer_name"), "tokenizer_revision": V("tokenizer_revision") or "none",
            "tokenizer_sha256": V("tokenizer_sha256"), "tokenizer_corpus_sha256": V("tokenizer_corpus_sha256") or "none"}


def figure(png: str, pdf: str) -> dict:
    """The vector PDF for LaTeX (path relative to report/, where latexmk runs) and the PNG inlined for HTML."""
    return {"pdf": str(Path("..") / pdf), "png_data": "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()}


def build_context(*, metrics: MetricStore, tables: list[dict], figures: dict, claims: list[dict],
                  claim_reasons: list[dict], run: dict,
                  hyperparameters: dict[str, dict], paper_setup: dict, paper_values: dict[str, dict], provenance: dict,
                  reference: dict | None, outline: dict, radar_standard: float, sweeps: list | None = None) -> dict:
    """Everything the templates show. `paper_setup` is the paper's setup (configs/paper.yaml), `paper_values` its
    published numbers (paper/paper_values.yaml), `outline` the sections (templates/outline.yaml), `sweeps` the finished
    sweeps (qrepro.report.sweeps.sweep_context; none unless `snakemake sweep` has run)."""
    return {"run": run_description(run, metrics), "v": Values(metrics), "pv": PaperValues(paper_values),
            "data_card": data_card(metrics), "tables": tables, "figures": figures, "claims": claims, "claim_reasons": claim_reasons,
            "hyperparameters": hyperparameters, "paper_setup": paper_setup, "provenance": provenance, "reference": reference,
            "outline": outline, "radar_standard": radar_standard, "sweeps": sweeps or [],
            "summary": summary(metrics, run, claims, hyperparameters, paper_setup, paper_values),
            "deviations": deviation_facts(metrics, hyperparameters)}


def deviation_facts(metrics: MetricStore, hyperparameters: dict[str, dict]) -> dict:
    """What the list of deviations from the paper decides, computed from the files (the template only words it):
    whether the device is the paper's T4; per variant, whether a paged optimizer was asked for but bitsandbytes kept
    some of its state unpaged; whether every timing file (timing: true) says its job ran alone."""
    device = metrics.record("device", "peak_flops").get("details", {})
    timed = [record for record in metrics.records.values() if record.get("timing")]
    return {"device_is_papers_gpu": is_papers_gpu(device.get("gpu")),
            "paged_fallback": {variant: "paged" in ran["optim"]
                               and ran["optimizer_paged_tensors"] < ran["optimizer_state_tensors"]
                               for variant, ran in hyperparameters.items()},
            "timed_jobs_alone": all(record.get("details", {}).get("ran_alone", True) is not False for record in timed)}


def provenance(*, git_commit: str, config_digest: str, manifest: dict[str, str], m: MetricStore) -> dict:
    return {"git_commit": git_commit, "config_digest": config_digest, "packages": package_versions(REPORTED_PACKAGES),
            "hardware": m.record("device", "peak_flops")["details"]["hardware"],
            "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "files": sorted(manifest.items())}


def table_entry(entry: dict, index_path: str) -> dict:
    """One table of the index written by the tables rule: its LaTeX and HTML as produced by pandas."""
    for key in ("tex", "html"):
        if not Path(entry[key]).exists():
            raise FileNotFoundError(f"{entry[key]}, listed in {index_path}, is missing")
    return {**entry, "latex": RawLatex(Path(entry["tex"]).read_text()), "html": Markup(Path(entry["html"]).read_text())}
