"""The paper profile: exact on paper, checkable offline, clear errors where it needs a GPU or the hub."""
import os

import pytest

from conftest import copy_workflow, snakemake
from qrepro.hub import HubUnavailableError
from qrepro.metrics_io import read_metric


@pytest.fixture(scope="module")
def paper_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("paper"))


def test_structure_target_reproduces_the_paper_exactly(paper_copy):
    snakemake(paper_copy, "--configfile", "configs/paper.yaml", "--cores", "1", "structure")
    v = lambda scope, name: read_metric(paper_copy / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    assert v("architecture", "total_params") == 1_100_048_384
    assert v("structure", "lora_trainable_params") == 12_615_680
    assert round(v("structure", "lora_trainable_percent"), 2) == 1.15
    assert round(v("structure", "size_fp16_mb_paper"), 2) == 2098.18
    assert round(v("structure", "size_4bit_base_mb_paper"), 2) == 524.54
    assert round(v("structure", "size_adapters_mb_paper"), 2) == 24.06
    assert round(v("structure", "size_qlora_total_mb_paper"), 2) == 548.61
    assert round(v("comparison", "compression_ratio_paper_formula"), 2) == 3.82
    assert round(v("comparison", "size_reduction_percent_paper_formula"), 1) == 73.9
    assert round(v("structure", "flops_per_step_full_paper") / 1e12, 2) == 13.52
    assert round(v("structure", "flops_per_step_qlora_paper") / 1e12, 2) == 3.53
    assert round(v("comparison", "flops_reduction_percent_paper_formula"), 1) == 73.9
    # the real bitsandbytes layout: 16-bit embeddings and lm_head, quantization constants counted
    assert 2.7 < v("comparison", "compression_ratio_bnb_layout") < 2.9
    # what the paper's notebook printed (PROTOCOL.md), exactly
    assert v("structure", "total_params_packed_notebook") == 628_221_952
    assert v("structure", "total_params_peft") == 1_112_664_064
    assert round(v("structure", "size_qlora_mb_notebook"), 2) == 1010.48
    assert round(v("structure", "trainable_percent_packed_notebook"), 4) == 2.0082
    assert round(v("structure", "trainable_percent_peft"), 4) == 1.1338
    assert round(v("comparison", "paper_arch_compression_ratio_notebook"), 2) == 2.08
    assert v("architecture", "hidden_size") == 2048 and v("architecture", "num_key_value_heads") == 4
    assert not (paper_copy / "results/base_model").exists()  # no weights were needed


def test_paper_profile_plans_the_whole_dag_offline(paper_copy):
    planned = snakemake(paper_copy, "--configfile", "configs/paper.yaml", "-n", "report").stdout
    for rule in ("corpus", "tokenizer", "base_model", "finetune", "perplexity", "inference", "render", "pdf"):
        assert f"rule {rule}:" in planned, rule


def test_paper_profile_refuses_to_train_without_cuda(paper_copy):
    result = snakemake(paper_copy, "--configfile", "configs/paper.yaml", "--cores", "1", "train", check=False)
    assert result.returncode != 0
    assert "allow_cpu=false (this profile is meant for a CUDA GPU) and no CUDA device is visible" in result.stderr
    assert "training.precision=fp16 needs a CUDA device" in result.stderr
    assert not (paper_copy / "results/data").exists()


def test_hub_errors_name_the_local_options():
    from qrepro.data.splits import hf_raw
    from qrepro.model.llama import load_pretrained
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(HubUnavailableError, match=r"HF_HUB_OFFLINE=1 is set.*data.source: local"):
        hf_raw("wikitext", "wikitext-2-raw-v1", None)
    with pytest.raises(HubUnavailableError, match=r"model.source: local with model.local_path"):
        load_pretrained("TinyLlama/TinyLlama-1.1B-Chat-v1.0", revision="fe8a4ea1ffedaf415f4da2f062534de366a451e6")


def test_qlora_on_cuda_needs_bitsandbytes_cuda_kernels():
    from qrepro.model.quant import QuantizationUnavailableError, require_bitsandbytes
    require_bitsandbytes(cuda=False)
    with pytest.raises(QuantizationUnavailableError, match="no CUDA kernels"):
        require_bitsandbytes(cuda=True)


def test_a_local_model_goes_through_the_same_code(test_run, tmp_path):
    """model.source: local (with its own tokenizer), pointed at a base model this project made itself: loaded
    from safetensors and checked against the declared architecture, as a hub model is."""
    import shutil
    workdir = copy_workflow(tmp_path / "local")
    shutil.copytree(test_run / "results/base_model", tmp_path / "model")
    (workdir / "local.yaml").write_text(f"tokenizer:\n  source: model\nmodel:\n  source: local\n"
                                        f"  local_path: {tmp_path / 'model'}\n")
    snakemake(workdir, "--configfile", "configs/test.yaml", "local.yaml", "--cores", "2",
              "results/metrics/dataset/vocab_size.json", "results/base_model")
    from safetensors.torch import load_file
    original = load_file(test_run / "results/base_model/model.safetensors")
    loaded = load_file(workdir / "results/base_model/model.safetensors")
    assert original.keys() == loaded.keys()
    # stored in model.load_dtype (fp16), as a hub model is: the same weights, rounded to fp16
    assert all(torch_equal(original[k].to(loaded[k].dtype), loaded[k]) for k in original)
    assert read_metric(workdir / "results/metrics/dataset/vocab_size.json")["value"] == \
        read_metric(test_run / "results/metrics/dataset/vocab_size.json")["value"]
    (workdir / "wrong.yaml").write_text("model:\n  architecture:\n    hidden_size: 96\n    num_attention_heads: 2\n")
    result = snakemake(workdir, "--configfile", "configs/test.yaml", "local.yaml", "wrong.yaml", "--cores", "1",
                       "--forcerun", "base_model", "results/base_model", check=False)
    assert result.returncode != 0 and "model.architecture does not match the loaded model (hidden_size" in result.stderr


def torch_equal(a, b):
    import torch
    return bool(torch.equal(a, b))


def test_several_gpus_go_through_accelerate_launch(paper_copy):
    import subprocess
    import sys

    from qrepro.training.job import accelerate_command
    command = accelerate_command(4, "job.json")
    assert command[1:] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4",
                           "-m", "qrepro.training.job", "job.json"]
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--help"], check=True, capture_output=True)
    (paper_copy / "multi.yaml").write_text("training:\n  num_processes: 4\n")
    planned = snakemake(paper_copy, "-n", "train", "--configfile", "configs/paper.yaml", "multi.yaml").stdout
    assert "gpu=4" in planned
    result = snakemake(paper_copy, "train", "--cores", "1", "--configfile", "configs/paper.yaml", "multi.yaml",
                       "--config", "allow_cpu=True", "training={'precision': 'bf16'}", check=False)
    assert "training.num_processes=4 runs one process per GPU and no CUDA device is visible" in result.stderr


def test_offline_gpu_profile_is_the_paper_architecture_and_recipe(paper_copy):
    """configs/paper-arch.yaml on top of configs/paper.yaml: the paper's architecture with random weights, the full
    recipe, no hub; planned offline, refused without CUDA."""
    from qrepro.config_checks import merged_profile
    config = merged_profile(*(paper_copy / f for f in ("config.yaml", "configs/paper.yaml", "configs/paper-arch.yaml")))
    assert config["model"]["init"] == "random" and config["data"]["source"] == "synthetic"
    assert config["data"]["synthetic"]["scale"] == 1.0 and config["model"]["architecture"]["vocab_size"] == 32000
    assert (config["training"]["max_steps"], config["training"]["eval_steps"], config["training"]["save_steps"]) == (500, 200, 500)
    assert config["training"]["qlora"]["gradient_checkpointing"] and not config["training"]["full"]["gradient_checkpointing"]
    args = ["--configfile", "configs/paper.yaml", "configs/paper-arch.yaml"]
    planned = snakemake(paper_copy, "-n", "html", *args).stdout
    for rule in ("corpus", "tokenizer", "base_model", "finetune", "perplexity", "inference", "comparisons", "render"):
        assert f"rule {rule}:" in planned, rule
    assert "rule tokenize_pretrain:" not in planned  # random weights: nothing to pretrain
    result = snakemake(paper_copy, "--cores", "1", "train", *args, check=False)
    assert result.returncode != 0 and "no CUDA device is visible" in result.stderr
