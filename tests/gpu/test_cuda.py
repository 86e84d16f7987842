"""GPU suite: QLoRA on CUDA end to end. Marked `gpu`, skipped without CUDA; run it on a GPU machine with
    HF_HUB_OFFLINE=1 python3 -m pytest -q -m gpu tests/gpu
"""
import json

import pytest
import torch

from conftest import LORA_TARGETS, copy_workflow, snakemake
from qrepro.metrics_io import read_metric
from tiny_models import save_tiny_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SIZE = dict(hidden_size=256, intermediate_size=512)  # the tiny LLaMA made big enough for the GPU kernels' layouts
QUANT = dict(quant_type="nf4", double_quant=True, compute_dtype="auto")
LORA = dict(r=16, alpha=32, dropout=0.05, bias="none", target_modules=list(LORA_TARGETS))
FIRST_LORA_B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_base")
    save_tiny_model(folder, "llama", 512, dtype=torch.float16, **SIZE)
    return str(folder)


def test_qlora_trains_on_cuda_and_keeps_learning_after_evaluation(base_dir, tmp_path):
    """4-bit layers on the GPU, paged AdamW 8-bit, fp16 autocast, gradient checkpointing as the paper; the
    first layer's LoRA still changes after an evaluation pass."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from qrepro.model.quant import linear4bit_modules
    from qrepro.training.variants import build_qlora

    model = build_qlora(base_dir, QUANT, LORA, precision="fp16", cuda=True, gradient_checkpointing=True)
    layers = linear4bit_modules(model)
    assert len(layers) == 14 and all(layer.weight.device.type == "cuda" for layer in layers)
    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_evaluate(self, args, state, control, **kwargs):
            snapshots.setdefault("after_eval", dict(model.named_parameters())[FIRST_LORA_B].detach().clone())

        def on_train_end(self, args, state, control, **kwargs):
            snapshots["end"] = dict(model.named_parameters())[FIRST_LORA_B].detach().clone()

    ids = torch.randint(3, 512, (64, 32), generator=torch.Generator().manual_seed(0))
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-3,
                             eval_strategy="steps", eval_steps=4, save_strategy="no", report_to="none", fp16=True,
                             disable_tqdm=True, optim="paged_adamw_8bit", max_grad_norm=0.0)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data.select(range(8)),
                      data_collator=default_data_collator, callbacks=[Snapshot()])
    trainer.train()
    assert not torch.equal(snapshots["after_eval"], snapshots["end"]), "layer-0 LoRA stopped learning after evaluation"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_merged_model_gives_the_adapted_models_predictions(base_dir, tmp_path):
    """qlora_merged (adapter folded into the dequantized NF4 base) predicts what the 4-bit base plus adapter does."""
    from qrepro.model.loading import load_for_eval
    from qrepro.training.variants import build_qlora

    model = build_qlora(base_dir, QUANT, {**LORA, "dropout": 0.0}, precision="fp16", cuda=True, gradient_checkpointing=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)  # a trained-looking adapter (lora_B starts at zero)
    model.save_pretrained(tmp_path / "adapter")
    ids = torch.randint(3, 512, (2, 24), generator=torch.Generator().manual_seed(1)).cuda()
    logits = {}
    for kind in ("qlora", "qlora_merged"):
        loaded = load_for_eval(kind, base_dir, str(tmp_path / "adapter"), QUANT, "fp16", cuda=True)
        with torch.no_grad():
            logits[kind] = loaded(input_ids=ids).logits.float()
    agree = (logits["qlora"].argmax(-1) == logits["qlora_merged"].argmax(-1)).float().mean().item()
    assert agree > 0.95 and torch.allclose(logits["qlora"], logits["qlora_merged"], atol=0.1, rtol=0.05)


def test_the_pipeline_measures_perplexity_and_inference_on_cuda(tmp_path):
    """The test profile on the GPU up to the perplexity and inference files: fp16, CUDA, the paper's methods."""
    workdir = copy_workflow(tmp_path / "run")
    # config.yaml pins fp32 for the CPU default; on a GPU, auto resolves to the paper's fp16
    (workdir / "gpu.yaml").write_text("training:\n  precision: auto\nevaluation:\n  dtype: auto\n")
    targets = [f"results/metrics/{m}/{name}.json" for m in ("base", "full", "qlora")
               for name in ("perplexity_paper", "perplexity_token")]
    targets += [f"results/metrics/{m}/tokens_per_s.json" for m in ("full", "qlora", "qlora_merged")]
    targets += ["results/metrics/device/peak_flops.json", "results/metrics/qlora/step_time_s.json"]
    snakemake(workdir, "--configfile", "configs/test.yaml", "gpu.yaml", "--cores", "4", *targets, timeout=1200)
    assert read_metric(workdir / "results/metrics/device/peak_flops.json")["details"]["cuda"] is True
    for model in ("base", "full", "qlora"):
        record = read_metric(workdir / f"results/metrics/{model}/perplexity_token.json")
        assert "(fp16)" in record["method"] and 1 < record["value"] < 10_000
    for model in ("full", "qlora", "qlora_merged"):
        record = read_metric(workdir / f"results/metrics/{model}/tokens_per_s.json")
        assert "on CUDA" in record["method"] and record["details"]["generated_tokens_per_run"] == [50] * record["details"]["runs"]
    assert json.loads((workdir / "results/train/qlora/hyperparameters.json").read_text())["precision"] == "fp16"
