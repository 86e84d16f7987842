"""The single context both report templates render: numbers as formatted strings, tables, figures,
claims, deviations and provenance. Every number here comes from a file under results/."""
from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from markupsafe import Markup

from qrepro.report.placeholders import fmt
from qrepro.report.reference import package_versions
from qrepro.report.render import RawLatex
from qrepro.report.store import MetricStore, read_json, sha256

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


def direction(value: float, above: str, below: str, same: str = "no different from") -> str:
    """The word a signed number needs: 'slower'/'faster', 'higher'/'lower'... read from the number itself."""
    return above if value > 0 else below if value < 0 else same


def numbers(m: MetricStore) -> dict[str, str]:
    """Every number the report's prose states, formatted, and the direction words those numbers imply."""
    V = m.value
    C = lambda name: V("comparison", name)  # noqa: E731
    f = lambda scope, name, kind: fmt(V(scope, name), kind)  # noqa: E731
    slowdown, step_slowdown = C("training_slowdown_percent_total"), C("training_slowdown_percent_per_step")
    ppl_paper, ppl_token = C("perplexity_change_percent_paper"), C("perplexity_change_percent_token")
    flops_paper, flops_analytic = C("flops_reduction_percent_paper_formula"), C("flops_reduction_percent_analytic")
    return {
        "total_params": f("architecture", "total_params", "int"),
        "paper_total_params": f("paper_architecture", "total_params", "int"),
        "trainable_qlora": f("qlora", "trainable_params", "int"),
        "trainable_percent_qlora": f("qlora", "trainable_percent", "f2"),
        "paper_trainable_qlora": f("paper_structure", "lora_trainable_params", "int"),
        "paper_trainable_percent": f("paper_structure", "lora_trainable_percent", "f2"),
        "paper_trainable_percent_notebook": f("paper_structure", "trainable_percent_packed_notebook", "f4"),
        "paper_trainable_percent_peft": f("paper_structure", "trainable_percent_peft", "f4"),
        "size_fp16_paper": f("structure", "size_fp16_mb_paper", "f2"),
        "size_qlora_paper": f("structure", "size_qlora_total_mb_paper", "f2"),
        "compression_paper": fmt(C("compression_ratio_paper_formula"), "f2"),
        "compression_memory": fmt(C("compression_ratio_memory"), "f2"),
        "size_full_memory": f("full", "model_size_memory_mb", "f2"),
        "size_qlora_memory": f("qlora", "model_size_memory_mb", "f2"),
        "adapter_dtypes": ", ".join(m.record("qlora", "model_size_memory_mb")["details"].get("adapter_dtypes", [])),
        "paper_arch_compression_paper": fmt(C("paper_arch_compression_ratio_paper_formula"), "f2"),
        "paper_arch_compression_bnb": fmt(C("paper_arch_compression_ratio_bnb_layout"), "f2"),
        "paper_arch_compression_notebook": fmt(C("paper_arch_compression_ratio_notebook"), "f2"),
        "paper_arch_size_bnb": f("paper_structure", "size_qlora_bnb_mb", "f2"),
        "paper_arch_size_notebook": f("paper_structure", "size_qlora_mb_notebook", "f2"),
        "nf4_bits": f("paper_structure", "nf4_bits_per_weight", "f3"),
        "flops_full_paper": f("structure", "flops_per_step_full_paper", "tflops"),
        "flops_qlora_paper": f("structure", "flops_per_step_qlora_paper", "tflops"),
        "flops_full_analytic": f("full", "flops_per_step_analytic", "tflops"),
        "flops_qlora_analytic": f("qlora", "flops_per_step_analytic", "tflops"),
        "flops_reduction_paper": fmt(abs(flops_paper), "f1"),
        "flops_reduction_paper_word": direction(flops_paper, "less", "more", "no less"),
        "flops_reduction_analytic": fmt(abs(flops_analytic), "f1"),
        "flops_reduction_analytic_word": direction(flops_analytic, "less", "more", "no less"),
        "flops_counted_over_executed_full": fmt(C("flops_counted_over_executed_full"), "f4"),
        "flops_counted_over_executed_qlora": fmt(C("flops_counted_over_executed_qlora"), "f4"),
        "mfu_full_paper": f("full", "mfu_paper", "f2"),
        "mfu_qlora_paper": f("qlora", "mfu_paper", "f2"),
        "mfu_full_analytic": f("full", "mfu_analytic", "f2"),
        "mfu_qlora_analytic": f("qlora", "mfu_analytic", "f2"),
        "peak_tflops": fmt(V("device", "peak_flops") / 1e12, "f3"),
        "paper_peak_tflops": fmt(m.record("full", "mfu_paper")["details"]["peak_flops"] / 1e12, "f3"),
        "time_full": f("full", "train_time_s", "f1"),
        "time_qlora": f("qlora", "train_time_s", "f1"),
        "step_full": f("full", "step_time_s", "f4"),
        "step_qlora": f("qlora", "step_time_s", "f4"),
        "training_slowdown": fmt(abs(slowdown), "f1"),
        "training_slowdown_word": direction(slowdown, "slower", "faster"),
        "step_slowdown": fmt(abs(step_slowdown), "f1"),
        "step_slowdown_word": direction(step_slowdown, "slower", "faster"),
        "peak_mem_full": f("full", "peak_train_memory_mb", "f0"),
        "peak_mem_qlora": f("qlora", "peak_train_memory_mb", "f0"),
        "peak_mem_method": m.record("full", "peak_train_memory_mb")["method"],
        "ppl_base_paper": f("base", "perplexity_paper", "f2"),
        "ppl_full_paper": f("full", "perplexity_paper", "f2"),
        "ppl_qlora_paper": f("qlora", "perplexity_paper", "f2"),
        "ppl_base_token": f("base", "perplexity_token", "f2"),
        "ppl_full_token": f("full", "perplexity_token", "f2"),
        "ppl_qlora_token": f("qlora", "perplexity_token", "f2"),
        "ppl_change_paper": fmt(abs(ppl_paper), "f2"),
        "ppl_change_paper_word": direction(ppl_paper, "higher", "lower", "equal"),
        "ppl_change_token": fmt(abs(ppl_token), "f2"),
        "ppl_change_token_word": direction(ppl_token, "higher", "lower", "equal"),
        "tps_full": f("full", "tokens_per_s", "f1"),
        "tps_qlora": f("qlora", "tokens_per_s", "f1"),
        "tps_merged": f("qlora_merged", "tokens_per_s", "f1"),
        "inference_slowdown": fmt(C("inference_slowdown_x"), "f2"),
        "merged_vs_full": fmt(C("tokens_per_s_merged_over_full"), "f2"),
        "padding_efficiency": fmt(100 * V("dataset", "train_padding_efficiency"), "f1"),
        "steps_full": f("full", "train_steps", "int"),
        "steps_qlora": f("qlora", "train_steps", "int"),
    }


def run_description(run: dict, m: MetricStore) -> dict:
    hardware = m.record("device", "peak_flops")["details"]
    device = (f"CUDA GPU ({hardware.get('gpu', 'unknown')})" if hardware["cuda"] else
              f"CPU ({hardware['hardware'].get('cpu_model', 'unknown model')}, {hardware['hardware']['cpu_count']} "
              f"cores, bf16 support: {hardware['hardware']['cpu_bf16']})")
    model = (f"{run['hub_id']} @ {run['revision']}" if run["model_source"] == "hub" else
             run["local_path"] if run["model_source"] == "local" else
             f"small LLaMA pretrained by the pipeline ({fmt(m.value('architecture', 'total_params'), 'int')} parameters, "
             f"{m.value('architecture', 'num_layers')} layers, hidden {m.value('architecture', 'hidden_size')})")
    if run["init"] == "random":
        model += ", random weights"
    data = {"synthetic": "synthetic WikiText-2-shaped corpus generated by the pipeline",
            "hf": f"{run['hf_name']} / {run['hf_config']} from the Hugging Face hub",
            "local": f"local files in {run['local_dir']}"}[run["data_source"]]
    return {**run, "device": device, "model": model, "data": data,
            "precision_full": m.value("full", "precision"), "precision_qlora": m.value("qlora", "precision")}


def deviations(run: dict, m: MetricStore, hyperparameters: dict[str, dict], paper: dict) -> list[str]:
    """How this run differs from the paper's setup (the recipe is the same; scale may not be).
    `paper` holds the paper's setup (configs/paper.yaml): hub id, sequence length, steps."""
    V = m.value
    found = []
    if run["model_source"] != "hub" or run["hub_id"] != paper["hub_id"]:
        found.append(f"Model: {run['model']} instead of {paper['hub_id']} "
                     f"({fmt(V('paper_architecture', 'total_params'), 'int')} parameters).")
    if run["init"] == "random":
        found.append("Model weights are random (model.init: random): perplexity is not meaningful.")
    if run["data_source"] != "hf":
        found.append(f"Data: {run['data']} instead of {paper['hf_name']} / {paper['hf_config']}.")
    if V("dataset", "max_seq_length") != paper["max_length"]:
        found.append(f"Sequence length {V('dataset', 'max_seq_length')} instead of {paper['max_length']}.")
    device = m.record("device", "peak_flops")["details"]
    if not device["cuda"]:
        found.append(f"Device: {run['device']} instead of an NVIDIA T4; MFU is measured against this CPU's measured matmul "
                     "peak, and paged AdamW falls back to non-paged.")
    elif "T4" not in (device.get("gpu") or ""):
        found.append(f"Device: {device.get('gpu')} instead of an NVIDIA T4: absolute times do not compare with the "
                     "paper's, ratios may.")
    if V("full", "precision") != "fp16":
        found.append(f"Precision: {V('full', 'precision')} (fp16 autocast needs CUDA) instead of fp16.")
    weights = hyperparameters["full"].get("weights_dtype")
    if weights == "float32" and V("full", "precision") in ("fp16", "bf16"):
        found.append(f"Standard fine-tuning keeps float32 master weights under {V('full', 'precision')} autocast; the "
                     "paper's notebook loaded fp16 weights (which the AMP grad scaler cannot train).")
    for variant in ("full", "qlora"):
        details = m.record(variant, "train_time_s")["details"]
        name = "Standard fine-tuning" if variant == "full" else "QLoRA"
        saves, evaluations = details["saves_at_steps"], details["evaluations_at_steps"]
        if saves != [paper["max_steps"]]:
            found.append(f"{name} saved {len(saves)} checkpoint(s) (at steps {', '.join(map(str, saves))}, for "
                         f"resuming) where the paper saved one at step {paper['max_steps']}; the paper-protocol "
                         "training time includes them.")
        if len(evaluations) != paper["max_steps"] // paper["eval_steps"]:
            found.append(f"{name} evaluated {len(evaluations)} time(s) (at steps {', '.join(map(str, evaluations))}) "
                         f"where the paper evaluated {paper['max_steps'] // paper['eval_steps']} times; the "
                         "paper-protocol training time includes them.")
    processes = m.record("full", "train_time_s")["details"]["processes"]
    alone = all(m.record(v, "train_time_s")["details"]["ran_alone"] for v in ("full", "qlora"))
    found.append(("Timed jobs (training, inference, the MFU peak) ran alone, each holding all "
                  f"{processes[-1]['reserved_cores']} core(s) given to Snakemake; untimed jobs (FLOP counting, "
                  "perplexity, sizes) ran side by side.") if alone else
                 "Timed jobs were not shown to run alone (a cluster executor placed them): times may include "
                 "other jobs' load.")
    if run["packing"]:
        found.append("Sequence packing is on (data.packing: true); the paper pads every row to max_length.")
    return found


def data_card(m: MetricStore) -> dict:
    """What data and tokenizer the run measured, from results/metrics/data_card (rule data_card)."""
    V = lambda name: m.value("data_card", name)  # noqa: E731
    splits = [{"split": split, "rows": fmt(V(f"{split}_rows"), "int"), "empty_rows": fmt(V(f"{split}_empty_rows"), "int"),
               "characters": fmt(V(f"{split}_characters"), "int"), "sha256": V(f"{split}_sha256")}
              for split in ("train", "validation", "test", "pretrain") if V(f"{split}_rows") is not None]
    return {"source": V("data_source"), "location": V("data_location"), "revision": V("data_revision") or "none",
            "splits": splits, "tokenizer_name": V("tokenizer_name"), "tokenizer_revision": V("tokenizer_revision") or "none",
            "tokenizer_sha256": V("tokenizer_sha256"), "tokenizer_corpus_sha256": V("tokenizer_corpus_sha256") or "none"}


def figure(png: str, pdf: str) -> dict:
    """The vector PDF for LaTeX (path relative to report/, where latexmk runs) and the PNG inlined for HTML."""
    return {"pdf": str(Path("..") / pdf), "png_data": "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()}


def build_context(*, metrics: MetricStore, tables: list[dict], figures: dict, claims: list[dict], run: dict,
                  hyperparameters: dict[str, dict], paper: dict, provenance: dict, reference: dict | None) -> dict:
    run = run_description(run, metrics)
    return {"run": run, "n": numbers(metrics), "data_card": data_card(metrics), "tables": tables, "figures": figures,
            "claims": claims,
            "deviations": deviations(run, metrics, hyperparameters, paper), "provenance": provenance,
            "reference": reference}


def provenance(*, git_commit: str, config_digest: str, manifest: dict[str, str], m: MetricStore) -> dict:
    return {"git_commit": git_commit, "config_digest": config_digest, "packages": package_versions(PACKAGES),
            "hardware": m.record("device", "peak_flops")["details"]["hardware"],
            "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "files": sorted(manifest.items())}


def table_entry(entry: dict, index_path: str) -> dict:
    """One table of the index written by the tables rule: its LaTeX and HTML as produced by pandas."""
    for key in ("tex", "html"):
        if not Path(entry[key]).exists():
            raise FileNotFoundError(f"{entry[key]}, listed in {index_path}, is missing")
    return {**entry, "latex": RawLatex(Path(entry["tex"]).read_text()), "html": Markup(Path(entry["html"]).read_text())}
