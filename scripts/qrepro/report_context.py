"""The single context both report templates render: numbers as formatted strings, tables, figures,
claims, deviations and provenance. Every number here comes from a file under results/."""
from __future__ import annotations

import base64
import datetime as dt
import importlib.metadata
from pathlib import Path

from markupsafe import Markup

from .claims import verdicts
from .collect import MetricStore, read_json, sha256
from .render import RawLatex
from .report_tables import fmt

PACKAGES = ["torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "tokenizers", "snakemake",
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


def numbers(m: MetricStore) -> dict[str, str]:
    V = m.value
    ratio = lambda a, b: V(*a) / V(*b)  # noqa: E731
    pct_change = lambda scope_q, scope_s, name: 100 * (V(scope_q, name) - V(scope_s, name)) / V(scope_s, name)  # noqa: E731
    return {
        "total_params": fmt(V("architecture", "total_params"), "int"),
        "paper_total_params": fmt(V("paper_architecture", "total_params"), "int"),
        "trainable_qlora": fmt(V("qlora", "trainable_params"), "int"),
        "trainable_percent_qlora": fmt(V("qlora", "trainable_percent"), "f2"),
        "paper_trainable_qlora": fmt(V("paper_structure", "lora_trainable_params"), "int"),
        "paper_trainable_percent": fmt(V("paper_structure", "lora_trainable_percent"), "f2"),
        "size_fp16_paper": fmt(V("structure", "size_fp16_mb_paper"), "f2"),
        "size_qlora_paper": fmt(V("structure", "size_qlora_total_mb_paper"), "f2"),
        "compression_paper": fmt(V("structure", "compression_ratio_paper"), "f2"),
        "compression_memory": fmt(ratio(("full", "model_size_memory_mb"), ("qlora", "model_size_memory_mb")), "f2"),
        "size_full_memory": fmt(V("full", "model_size_memory_mb"), "f2"),
        "size_qlora_memory": fmt(V("qlora", "model_size_memory_mb"), "f2"),
        "paper_arch_compression_paper": fmt(V("paper_structure", "compression_ratio_paper"), "f2"),
        "paper_arch_compression_bnb": fmt(V("paper_structure", "compression_ratio_bnb"), "f2"),
        "paper_arch_size_bnb": fmt(V("paper_structure", "size_qlora_bnb_mb"), "f2"),
        "nf4_bits": fmt(V("paper_structure", "nf4_bits_per_weight"), "f3"),
        "flops_full_paper": fmt(V("structure", "flops_per_step_full_paper"), "tflops"),
        "flops_qlora_paper": fmt(V("structure", "flops_per_step_qlora_paper"), "tflops"),
        "flops_full_analytic": fmt(V("full", "flops_per_step_analytic"), "tflops"),
        "flops_qlora_analytic": fmt(V("qlora", "flops_per_step_analytic"), "tflops"),
        "flops_reduction_paper": fmt(100 * (1 - ratio(("structure", "flops_per_step_qlora_paper"), ("structure", "flops_per_step_full_paper"))), "f1"),
        "flops_reduction_analytic": fmt(100 * (1 - ratio(("qlora", "flops_per_step_analytic"), ("full", "flops_per_step_analytic"))), "f1"),
        "mfu_full_paper": fmt(V("full", "mfu_paper"), "f2"),
        "mfu_qlora_paper": fmt(V("qlora", "mfu_paper"), "f2"),
        "mfu_full_analytic": fmt(V("full", "mfu_analytic"), "f2"),
        "mfu_qlora_analytic": fmt(V("qlora", "mfu_analytic"), "f2"),
        "peak_tflops": fmt(V("device", "peak_flops") / 1e12, "f3"),
        "time_full": fmt(V("full", "train_time_s"), "f1"),
        "time_qlora": fmt(V("qlora", "train_time_s"), "f1"),
        "training_slowdown": fmt(100 * (ratio(("qlora", "train_time_s"), ("full", "train_time_s")) - 1), "f1"),
        "peak_mem_full": fmt(V("full", "peak_train_memory_mb"), "f0"),
        "peak_mem_qlora": fmt(V("qlora", "peak_train_memory_mb"), "f0"),
        "ppl_base_paper": fmt(V("base", "perplexity_paper"), "f2"),
        "ppl_full_paper": fmt(V("full", "perplexity_paper"), "f2"),
        "ppl_qlora_paper": fmt(V("qlora", "perplexity_paper"), "f2"),
        "ppl_base_token": fmt(V("base", "perplexity_token"), "f2"),
        "ppl_full_token": fmt(V("full", "perplexity_token"), "f2"),
        "ppl_qlora_token": fmt(V("qlora", "perplexity_token"), "f2"),
        "ppl_change_paper": fmt(pct_change("qlora", "full", "perplexity_paper"), "f2"),
        "ppl_change_token": fmt(pct_change("qlora", "full", "perplexity_token"), "f2"),
        "tps_full": fmt(V("full", "tokens_per_s"), "f1"),
        "tps_qlora": fmt(V("qlora", "tokens_per_s"), "f1"),
        "tps_merged": fmt(V("qlora_merged", "tokens_per_s"), "f1"),
        "inference_slowdown": fmt(ratio(("qlora", "inference_time_s"), ("full", "inference_time_s")), "f2"),
        "merged_vs_full": fmt(ratio(("qlora_merged", "tokens_per_s"), ("full", "tokens_per_s")), "f2"),
        "padding_efficiency": fmt(100 * V("dataset", "train_padding_efficiency"), "f1"),
        "steps_full": fmt(V("full", "train_steps"), "int"),
        "steps_qlora": fmt(V("qlora", "train_steps"), "int"),
    }


def run_description(run: dict, m: MetricStore) -> dict:
    hardware = m.record("device", "peak_flops")["details"]
    device = "CUDA GPU" if hardware["cuda"] else f"CPU ({hardware['hardware'].get('cpu_model', 'unknown model')}, " \
                                                 f"{hardware['hardware']['cpu_count']} cores, bf16 support: {hardware['hardware']['cpu_bf16']})"
    model = (f"{run['hub_id']} @ {run['revision']}" if run["model_source"] == "hub" else
             run["local_path"] if run["model_source"] == "local" else
             f"small LLaMA pretrained by the pipeline ({fmt(m.value('architecture', 'total_params'), 'int')} parameters, "
             f"{m.value('architecture', 'num_layers')} layers, hidden {m.value('architecture', 'hidden_size')})")
    data = {"synthetic": "synthetic WikiText-2-shaped corpus generated by the pipeline",
            "hf": f"{run['hf_name']} / {run['hf_config']} from the Hugging Face hub",
            "local": f"local files in {run['local_dir']}"}[run["data_source"]]
    return {**run, "device": device, "model": model, "data": data,
            "precision_full": m.value("full", "precision"), "precision_qlora": m.value("qlora", "precision")}


def deviations(run: dict, m: MetricStore) -> list[str]:
    """How this run differs from the paper's setup (the recipe is the same; scale may not be)."""
    V = m.value
    found = []
    if run["model_source"] != "hub" or run["hub_id"] != "TinyLlama/TinyLlama-1.1B-Chat-v1.0":
        found.append(f"Model: {run['model']} instead of TinyLlama-1.1B-Chat-v1.0 "
                     f"({fmt(V('paper_architecture', 'total_params'), 'int')} parameters).")
    if run["init"] == "random":
        found.append("Model weights are random (model.init: random): perplexity is not meaningful.")
    if run["data_source"] != "hf":
        found.append(f"Data: {run['data']} instead of wikitext-2-raw-v1.")
    if V("dataset", "max_seq_length") != 512:
        found.append(f"Sequence length {V('dataset', 'max_seq_length')} instead of 512.")
    if not m.record("device", "peak_flops")["details"]["cuda"]:
        found.append(f"Device: {run['device']} instead of an NVIDIA T4; MFU is measured against this CPU's measured matmul "
                     "peak, and paged AdamW falls back to non-paged.")
    if V("full", "precision") != "fp16":
        found.append(f"Precision: {V('full', 'precision')} mixed precision (fp16 autocast needs CUDA) instead of fp16.")
    found.append("Standard fine-tuning keeps fp32 master weights under mixed-precision autocast; the paper's notebook loaded "
                 "fp16 weights.")
    if run["packing"]:
        found.append("Sequence packing is on (data.packing: true); the paper pads every row to max_length.")
    return found


def figure(png: str, pdf: str) -> dict:
    """The vector PDF for LaTeX (path relative to report/, where latexmk runs) and the PNG inlined for HTML."""
    return {"pdf": str(Path("..") / pdf), "png_data": "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()}


def build_context(*, metrics: MetricStore, tables: list[dict], figures: dict, claims_path: str, run: dict,
                  provenance: dict, paper_scale: bool) -> dict:
    run = run_description(run, metrics)
    return {"run": run, "n": numbers(metrics), "tables": tables, "figures": figures,
            "claims": verdicts(metrics, claims_path, paper_scale), "deviations": deviations(run, metrics),
            "provenance": provenance}


def provenance(*, git_commit: str, config_digest: str, manifest: dict[str, str], m: MetricStore) -> dict:
    versions = []
    for name in PACKAGES:
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return {"git_commit": git_commit, "config_digest": config_digest, "packages": versions,
            "hardware": m.record("device", "peak_flops")["details"]["hardware"],
            "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "files": sorted(manifest.items())}


def table_entry(entry: dict, index_path: str) -> dict:
    """One table of the index written by the tables rule: its LaTeX and HTML as produced by pandas."""
    for key in ("tex", "html"):
        if not Path(entry[key]).exists():
            raise FileNotFoundError(f"{entry[key]}, listed in {index_path}, is missing")
    return {**entry, "latex": RawLatex(Path(entry["tex"]).read_text()), "html": Markup(Path(entry["html"]).read_text())}
