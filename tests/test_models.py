import pytest
import torch

from conftest import LORA_TARGETS, PAPER
from qrepro.hardware import cpu_supports_bf16
from qrepro.model.anatomy import describe
from qrepro.model.causal_lm import build_config, count_parameters, random_model
from qrepro.model.quant import disable_cpu_weight_repacking
from tiny_models import paper_architecture, save_tiny_model, tiny_arch, tiny_config

VOCAB = 256
ARCH = tiny_arch("llama")  # hidden 64, 2 layers, KV projections 64 -> 32, intermediate 128
H, L, I = ARCH["hidden_size"], ARCH["num_hidden_layers"], ARCH["intermediate_size"]
KV = ARCH["num_key_value_heads"] * H // ARCH["num_attention_heads"]


def _lora(targets, r=16):
    return dict(r=r, alpha=2 * r, dropout=0.0, bias="none", target_modules=targets)


def test_tinyllama_counts_match_the_paper_on_the_meta_device():
    arch = paper_architecture()
    config = build_config(arch, arch["vocab_size"], 1, 2)
    with torch.device("meta"):
        model = random_model(config, seed=0)
    assert count_parameters(model) == (PAPER["t2_total_params"], PAPER["t2_total_params"])
    # the one description the structure metrics, the memory guard and bench/gpu_check.py count with
    rng = torch.get_rng_state()
    facts = describe(config, _lora(list(LORA_TARGETS)))
    assert (facts.total_params, facts.trainable_params) == (PAPER["t2_total_params"], PAPER["t6_trainable_qlora"])
    assert (describe(config).total_params, describe(config).trainable_params) == (PAPER["t2_total_params"], 0)
    assert describe(config, _lora("all-linear")).trainable_params == PAPER["t6_trainable_qlora"]
    assert len(facts.lora_modules) == 7 * arch["num_hidden_layers"] and facts.lora_names == sorted(LORA_TARGETS)
    assert torch.equal(torch.get_rng_state(), rng)  # the training job's seeded RNG is left alone


def test_describe_reads_a_model_folder(tmp_path):
    config = tiny_config("llama", VOCAB)
    config.save_pretrained(tmp_path)
    facts = describe(str(tmp_path), _lora(["q_proj", "v_proj"], r=4))
    assert facts.config.hidden_size == H and facts.total_params == count_parameters(random_model(config, seed=0))[0]
    assert facts.trainable_params == L * 4 * ((H + H) + (H + KV))  # r x (in + out): q 64 -> 64, v 64 -> 32


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("base"), "llama", VOCAB)


def _qlora(base_dir, guard=True):
    from qrepro.model.quant import linear4bit_modules
    from qrepro.training.variants import build_qlora
    quant = dict(quant_type="nf4", double_quant=True, compute_dtype="auto")
    lora = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
    model = build_qlora(base_dir, quant, lora, precision="bf16", cuda=False, gradient_checkpointing=False)
    if not guard:  # undo the guard: bitsandbytes' default behaviour
        for layer in linear4bit_modules(model):
            layer.support_avx512bf16_for_cpu = cpu_supports_bf16()
    return model


def test_qlora_trainable_params_are_r_times_in_plus_out(base_dir):
    model = _qlora(base_dir)
    total, trainable = count_parameters(model)
    # r x (in + out) by hand: q, o 64 -> 64; k, v 64 -> 32; gate, up 64 -> 128 and down 128 -> 64, in each layer
    assert trainable == L * 16 * ((H + H) * 2 + (H + KV) * 2 + (H + I) * 3) == 2 * 16 * (256 + 192 + 576)
    full_total, full_trainable = count_parameters(random_model(tiny_config("llama", VOCAB), seed=0))
    assert total == full_total == full_trainable


def _first_layer_lora_grad_after_eval(model):
    x = torch.randint(3, 256, (2, 16))
    model.eval()
    with torch.no_grad():
        model(input_ids=x)  # an evaluation pass, as the Trainer runs every eval_steps
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=x, labels=x).loss.backward()
    grad = dict(model.named_parameters())[
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"].grad
    return 0.0 if grad is None else grad.abs().sum().item()


def test_lora_in_first_layer_still_learns_after_an_evaluation_pass(base_dir):
    # lora_B starts at zero, so lora_A's gradient is zero at step 0; lora_B's must not be.
    assert _first_layer_lora_grad_after_eval(_qlora(base_dir, guard=True)) > 0


@pytest.mark.skipif(not cpu_supports_bf16(), reason="the bitsandbytes repacking path exists only on AVX512-BF16 CPUs")
def test_without_the_guard_bitsandbytes_repacking_kills_the_gradient(base_dir):
    """Documents why disable_cpu_weight_repacking exists; if this starts failing, bitsandbytes fixed it."""
    model = _qlora(base_dir, guard=False)
    assert _first_layer_lora_grad_after_eval(model) == 0
    assert disable_cpu_weight_repacking(model) == 14


def test_first_layer_lora_keeps_learning_after_evaluation_inside_the_trainer(base_dir, tmp_path):
    """Regression for the bitsandbytes CPU repacking pitfall, in a real Trainer run with evaluation mid-way."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    model = _qlora(base_dir, guard=True)
    name = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"
    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_evaluate(self, args, state, control, **kwargs):
            snapshots.setdefault("after_eval", dict(model.named_parameters())[name].detach().clone())

        def on_train_end(self, args, state, control, **kwargs):
            snapshots["end"] = dict(model.named_parameters())[name].detach().clone()

    ids = torch.randint(3, 256, (32, 16), generator=torch.Generator().manual_seed(0))
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2,
                             eval_strategy="steps", eval_steps=4, save_strategy="no", report_to="none", use_cpu=True,
                             bf16=True, disable_tqdm=True, optim="paged_adamw_8bit")
    Trainer(model=model, args=args, train_dataset=data, eval_dataset=data.select(range(4)),
            data_collator=default_data_collator, callbacks=[Snapshot()]).train()
    assert not torch.equal(snapshots["after_eval"], snapshots["end"]), "layer-0 LoRA stopped learning after evaluation"


def test_notebook_numbers_are_what_bitsandbytes_and_peft_report(base_dir):
    """records.notebook_numbers (used at TinyLlama's scale on the meta device) against a real QLoRA model:
    numel over the packed 4-bit model, parameter bytes after prepare_model_for_kbit_training, peft's count."""
    from qrepro.evaluation.records import notebook_numbers
    model = _qlora(base_dir)
    total, lora = count_parameters(model)
    expected = notebook_numbers(describe(base_dir, _lora(list(LORA_TARGETS))))
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == expected["packed_total"]
    assert sum(p.numel() * p.element_size() for p in params) / 1024 ** 2 == pytest.approx(expected["size_mb"])
    trainable, all_params = model.get_nb_trainable_parameters()
    assert (trainable, all_params) == (lora, expected["peft_total"])
    assert 100 * lora / expected["packed_total"] == pytest.approx(expected["trainable_percent_packed"])



def _cpu_flags() -> set[str]:
    from pathlib import Path
    flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
    return set(flags[0].split(":", 1)[1].split()) if flags else set()


def test_the_cpu_4bit_kernel_fact_is_what_bitsandbytes_decided_on_this_cpu():
    """bitsandbytes tries its hub kernel only on a CPU with AVX512-BF16 (/proc/cpuinfo's avx512_bf16 flag, read here
    apart from bitsandbytes); the fact says whether it tried and whether the kernel loaded."""
    import bitsandbytes  # noqa: F401  (the CPU backend decides at import)
    from qrepro.model.quant import cpu_4bit_kernel
    fact = cpu_4bit_kernel(cuda=False)
    avx512_bf16 = "avx512_bf16" in _cpu_flags()
    assert fact["cpu_avx512_bf16"] == avx512_bf16 and fact["attempted"] == avx512_bf16
    import importlib.util
    if not avx512_bf16:
        assert fact["status"] == "not attempted" and fact["warning_logged"] is None
    elif importlib.util.find_spec("kernels") is None:  # tried and failed: the warning every QLoRA job logs
        assert fact["status"] == "not loaded" and "No module named 'kernels'" in fact["warning_logged"]
    assert cpu_4bit_kernel(cuda=True)["status"] == "not used (CUDA)"


def test_a_failed_cpu_4bit_kernel_load_is_recorded_with_its_warning(monkeypatch):
    """What bitsandbytes 0.50 does on an AVX512-BF16 CPU without the kernels package, replayed: the module keeps
    gemm_4bit_forward_kernel = None and logs the failure; the fact reports it, warning included."""
    import logging
    import sys
    import types
    from qrepro.model import quant
    import bitsandbytes.functional
    fake = types.ModuleType(quant.CPU_OPS_MODULE)
    fake.gemm_4bit_forward_kernel = None
    monkeypatch.setitem(sys.modules, quant.CPU_OPS_MODULE, fake)
    monkeypatch.setattr(bitsandbytes.functional, "has_avx512bf16", lambda: True)
    monkeypatch.setattr(quant._CPU_OPS_WARNINGS, "messages", [])
    logging.getLogger(quant.CPU_OPS_MODULE).warning(
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "No module named 'kernels'")
    fact = quant.cpu_4bit_kernel(cuda=False)
    assert fact["status"] == "not loaded" and fact["attempted"] and not fact["loaded"]
    assert fact["warning_logged"] == "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'."
    fake.gemm_4bit_forward_kernel = object()
    assert quant.cpu_4bit_kernel(cuda=False)["status"] == "loaded"
