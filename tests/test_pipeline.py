"""End to end: the whole DAG on configs/test.yaml, offline, in a fresh copy of the repository."""
import json

import pandas as pd
import pytest
import yaml

from conftest import snakemake
from qrepro.metrics_io import read_metric
from qrepro.modeling import LORA_TARGETS, expected_lora_params, llama_config

TRAIN_METRICS = ["total_params", "trainable_params", "trainable_percent", "train_time_s", "time_per_step_s",
                 "pure_step_time_s", "train_steps", "train_loss_first", "train_loss_final", "precision",
                 "peak_train_memory_mb"]


def _config(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    from snakemake.utils import update_config
    update_config(config, yaml.safe_load((workdir / "configs/test.yaml").read_text()))
    return config


def test_every_training_metric_is_written_and_valid(test_run):
    for variant in ("full", "qlora"):
        for name in TRAIN_METRICS:
            record = read_metric(test_run / f"results/metrics/{variant}/{name}.json")
            assert record["variant"] == variant and record["method"]
        assert (test_run / f"results/logs/finetune_{variant}.log").stat().st_size > 0
        assert (test_run / f"results/benchmarks/finetune_{variant}.tsv").exists()


def test_parameter_counts(test_run):
    config = _config(test_run)
    metric = lambda v, m: read_metric(test_run / f"results/metrics/{v}/{m}.json")["value"]  # noqa: E731
    arch = llama_config(config["model"]["architecture"], config["tokenizer"]["vocab_size"], 1, 2)
    lora = config["training"]["qlora"]["lora"]
    assert metric("qlora", "trainable_params") == expected_lora_params(arch, lora["target_modules"], lora["r"])
    assert set(lora["target_modules"]) == set(LORA_TARGETS)
    assert metric("full", "trainable_params") == metric("full", "total_params") == metric("qlora", "total_params")
    assert abs(metric("qlora", "trainable_percent")
               - 100 * metric("qlora", "trainable_params") / metric("qlora", "total_params")) < 1e-9


def test_training_ran_the_recipe_and_the_loss_went_down(test_run):
    config = _config(test_run)
    for variant in ("full", "qlora"):
        history = pd.read_csv(test_run / f"results/train/{variant}/log_history.csv")
        evals = history.dropna(subset=["eval_loss"])
        assert len(evals) >= 2, "evaluation must run every eval_steps"
        assert evals["eval_loss"].iloc[-1] < evals["eval_loss"].iloc[0]
        resolved = json.loads((test_run / f"results/train/{variant}/hyperparameters.json").read_text())
        hp = config["training"][variant]
        assert resolved["per_device_train_batch_size"] == hp["batch_size"]
        assert resolved["gradient_accumulation_steps"] == hp["gradient_accumulation_steps"]
        assert resolved["learning_rate"] == hp["learning_rate"]
        assert read_metric(test_run / f"results/metrics/{variant}/train_steps.json")["value"] == config["training"]["max_steps"]
    assert json.loads((test_run / "results/train/qlora/hyperparameters.json").read_text())["quant_type"] == "nf4"
    pretrain = pd.read_csv(test_run / "results/train/base/pretrain_log_history.csv").dropna(subset=["loss"])
    assert pretrain["loss"].iloc[-1] < pretrain["loss"].iloc[0] - 1.0


def test_qlora_weights_are_an_adapter_and_full_is_a_whole_model(test_run):
    qlora = test_run / "results/models/qlora"
    assert (qlora / "adapter_model.safetensors").exists() and (qlora / "adapter_config.json").exists()
    assert not (qlora / "model.safetensors").exists()
    assert (test_run / "results/models/full/model.safetensors").exists()


def test_changing_a_qlora_hyperparameter_reruns_only_qlora(test_run):
    (test_run / "changed.yaml").write_text("training:\n  qlora:\n    learning_rate: 3.0e-4\n")
    result = snakemake(test_run, "--configfile", "configs/test.yaml", "changed.yaml", "-n", "train")
    planned = result.stdout
    assert "finetune" in planned and "wildcards: variant=qlora" in planned
    assert "variant=full" not in planned and "rule base_model" not in planned
    assert "Nothing to be done" in snakemake(test_run, "--configfile", "configs/test.yaml", "-n", "train").stdout


def test_measurement_files_are_consistent(test_run):
    m = lambda scope, name: read_metric(test_run / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    metric_files = list((test_run / "results/metrics").rglob("*.json"))
    assert len(metric_files) > 100
    for path in metric_files:
        read_metric(path)
    s = "structure"
    assert m(s, "compression_ratio_paper") == pytest.approx(
        m(s, "size_fp16_mb_paper") / (m(s, "size_4bit_base_mb_paper") + m(s, "size_adapters_mb_paper")))
    assert m(s, "lora_trainable_params") == m("qlora", "trainable_params")
    for variant in ("full", "qlora", "qlora_merged"):
        assert m(variant, "tokens_per_s") * m(variant, "inference_time_s") == pytest.approx(50)
        details = read_metric(test_run / f"results/metrics/{variant}/tokens_per_s.json")["details"]
        assert details["generated_tokens"] == [50]
    for variant in ("full", "qlora"):
        assert m(variant, "perplexity_token") < m("base", "perplexity_token")
        assert m(variant, "flops_per_step_counted") > 0
        assert 0 < m(variant, "mfu_analytic") < 100
    # QLoRA's frozen weights need no weight gradients: fewer counted FLOPs than full fine-tuning per sequence
    per_seq = lambda v, bs: m(v, "flops_per_step_counted") / bs  # noqa: E731
    assert per_seq("qlora", 8) < per_seq("full", 8)
    assert m("paper_structure", "compression_ratio_paper") == pytest.approx(3.8246, abs=1e-4)


def test_memory_probe_measures_both_variants(run_copy):
    snakemake(run_copy, "--configfile", "configs/test.yaml", "--cores", "2", "memory")
    for variant in ("full", "qlora"):
        record = read_metric(run_copy / f"results/metrics/probe_{variant}/peak_train_memory_mb.json")
        assert record["value"] > 100 and record["details"]["steps"] == 2
        assert read_metric(run_copy / f"results/metrics/probe_{variant}/step_time_s.json")["value"] > 0
