"""The paper profile: exact on paper, checkable offline, clear errors where it needs a GPU or the hub."""
import os

import pytest

from conftest import PAPER, copy_workflow, snakemake
from qrepro.hub import HubUnavailableError
from qrepro.metrics_io import read_metric


@pytest.fixture(scope="module")
def paper_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("paper"))


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
def test_structure_target_reproduces_the_paper_exactly(paper_copy):
    snakemake(paper_copy, "--configfile", "configs/paper.yaml", "--cores", "1", "structure")
    v = lambda scope, name: read_metric(paper_copy / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    p = PAPER
    assert v("architecture", "total_params") == p["t2_total_params"]
    assert v("structure", "lora_trainable_params") == p["t6_trainable_qlora"]
    assert round(v("structure", "lora_trainable_percent"), 2) == p["t6_percent_qlora"]
    assert round(v("structure", "size_fp16_mb_paper"), 2) == p["t5_fp16_mb"]
    assert round(v("structure", "size_4bit_base_mb_paper"), 2) == p["t5_base_4bit_mb"]
    assert round(v("structure", "size_adapters_mb_paper"), 2) == p["t5_adapters_mb"]
    assert round(v("structure", "size_qlora_total_mb_paper"), 2) == p["t5_qlora_total_mb"]
    assert round(v("comparison", "compression_ratio_paper_formula"), 2) == p["t5_compression"]
    assert round(v("comparison", "size_reduction_percent_paper_formula"), 1) == p["t5_reduction_percent"]
    assert round(v("structure", "flops_per_step_full_paper") / 1e12, 2) == p["t7_flops_full"]
    assert round(v("structure", "flops_per_step_qlora_paper") / 1e12, 2) == p["t7_flops_qlora"]
    assert round(v("comparison", "flops_reduction_percent_paper_formula"), 1) == p["t7_reduction_percent"]
    # the real bitsandbytes layout: 16-bit embeddings and lm_head, quantization constants counted
    assert 2.7 < v("comparison", "compression_ratio_bnb_layout") < 2.9
    # what the paper's notebook printed (PROTOCOL.md), exactly
    assert v("structure", "total_params_packed_notebook") == p["notebook_total_params_packed"]
    assert v("structure", "total_params_peft") == p["notebook_total_params_peft"]
    assert round(v("structure", "size_qlora_mb_notebook"), 2) == p["notebook_qlora_size_mb"]
    assert round(v("structure", "trainable_percent_packed_notebook"), 4) == p["notebook_trainable_percent_packed"]
    assert round(v("structure", "trainable_percent_peft"), 4) == p["notebook_trainable_percent_peft"]
    assert v("comparison", "paper_arch_compression_ratio_notebook") == pytest.approx(
        p["t5_fp16_mb"] / p["notebook_qlora_size_mb"], abs=5e-5)
    assert v("architecture", "hidden_size") == 2048 and v("architecture", "num_key_value_heads") == 4
    assert not (paper_copy / "results/base_model").exists()  # no weights were needed


def test_paper_profile_plans_the_whole_dag_offline(paper_copy):
    planned = snakemake(paper_copy, "--configfile", "configs/paper.yaml", "-n", "report").stdout
    for rule in ("corpus", "tokenizer", "base_model", "finetune", "perplexity", "inference", "render", "pdf"):
        assert f"rule {rule}:" in planned, rule


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
def test_paper_profile_refuses_to_train_without_cuda(paper_copy):
    result = snakemake(paper_copy, "--configfile", "configs/paper.yaml", "--cores", "1", "train", check=False)
    assert result.returncode != 0
    assert "allow_cpu=false (this profile is meant for a CUDA GPU) and no CUDA device is visible" in result.stderr
    assert "training.precision=fp16 needs a CUDA device" in result.stderr
    assert not (paper_copy / "results/data").exists()


def test_hub_errors_name_the_local_options():
    from qrepro.data.splits import hf_raw
    from qrepro.model.causal_lm import load_pretrained
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


def test_several_processes_ask_for_one_gpu_each_and_must_divide_the_accumulation(paper_copy):
    """num_processes GPUs per training job on a cluster; a count that does not divide a variant's gradient
    accumulation (the global batch could not stay the recipe's) is refused before anything runs. The processes
    really training together: tests/test_multiprocess.py."""
    (paper_copy / "multi.yaml").write_text("training:\n  num_processes: 2\n")
    planned = snakemake(paper_copy, "-n", "train", "--configfile", "configs/paper.yaml", "multi.yaml").stdout
    assert "gpu=2" in planned
    (paper_copy / "multi.yaml").write_text("training:\n  num_processes: 4\n")
    result = snakemake(paper_copy, "-n", "train", "--configfile", "configs/paper.yaml", "multi.yaml", check=False)
    assert result.returncode != 0
    assert "training.num_processes=4 must divide training.qlora.gradient_accumulation_steps=2" in (
        result.stdout + result.stderr)


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
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
