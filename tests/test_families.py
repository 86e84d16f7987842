"""Five families (tests/tiny_models.py: Llama-3, Qwen2, Mistral, Phi-3, Gemma), each fact the library reads from the
model on the meta device (qrepro.model.anatomy.describe) against an independent computation on the real model:

- the parameter count against sum(p.numel()) of the model built on the CPU;
- the bitsandbytes layout against the bytes of the model really loaded in 4-bit;
- the LoRA count against peft's own count on the real 4-bit model, and r x (in + out) over its 4-bit linears;
- the executed-FLOPs formula against torch's FLOP counter over one real step, where the formula holds (it does not
  for Phi-3's fused projections: the formula says so and refuses).

The whole DAG with another family is the paper profile's hub run (tests/test_hub_offline.py: its cached model is a
Qwen2).
"""
import pytest
import torch

from conftest import LORA_TARGETS
from qrepro.evaluation.flop_count import counted_step_flops
from qrepro.evaluation.footprint import memory_bytes
from qrepro.model import analytic
from qrepro.model.anatomy import ALL_LINEAR, LoraTargetError, check_lora_targets, describe
from qrepro.model.loading import load_4bit_base
from qrepro.training.variants import build_full, build_qlora
from tiny_models import FIVE_FAMILIES, TINY, VOCAB, save_tiny_model, tiny_model

R = 16
BATCH, SEQ = 2, 64
FUSED = {"phi3"}  # decoder layers of qkv_proj, o_proj, gate_up_proj, down_proj: none of the seven LLaMA names but two
ATTENTION_FORWARD = "aten._scaled_dot_product_flash_attention_for_cpu"


def lora(targets) -> dict:
    return dict(r=R, alpha=2 * R, dropout=0.0, bias="none",
                target_modules=targets if targets == ALL_LINEAR else list(targets))


def peft_lora_config(targets):
    """peft's own LoraConfig, written here rather than taken from the library."""
    from peft import LoraConfig
    return LoraConfig(r=R, lora_alpha=2 * R, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=targets if targets == ALL_LINEAR else list(targets))


def load_4bit(folder: str):
    """The saved model loaded as QLoRA loads it: NF4 with double quantization, bf16 for the rest."""
    return load_4bit_base(folder, dict(quant_type="nf4", double_quant=True), "bf16", cuda=False)


def linear4bit_shapes(model) -> dict[str, tuple[int, int]]:
    import bitsandbytes as bnb
    return {name: (m.in_features, m.out_features) for name, m in model.named_modules()
            if isinstance(m, bnb.nn.Linear4bit)}


def one_batch():
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": ids, "labels": ids}]


@pytest.fixture(scope="module", params=FIVE_FAMILIES)
def family(request, tmp_path_factory):
    """(family, folder of its tiny model with random weights, saved as safetensors)."""
    name = request.param
    return name, save_tiny_model(tmp_path_factory.mktemp(name), name, VOCAB, seed=0)


def test_parameter_count_is_the_real_models(family):
    name, folder = family
    real = tiny_model(name, VOCAB, seed=0)
    facts = describe(folder)
    assert facts.total_params == sum(p.numel() for p in real.parameters())  # a tied weight once
    assert (real.get_output_embeddings().weight is real.get_input_embeddings().weight) == TINY[name]["tie_word_embeddings"]
    assert facts.family == type(real).__name__


def test_bitsandbytes_layout_is_the_loaded_4bit_models(family):
    """The linears transformers makes 4-bit, and the bytes bitsandbytes holds for them (packed weights, absmax, nested
    absmax, code book, offset) plus every other parameter in 16 bit."""
    name, folder = family
    model = load_4bit(folder)
    facts = describe(folder)
    assert linear4bit_shapes(model) == facts.quantized
    measured = memory_bytes(model)
    assert measured["parameters"] + measured["quant_state"] == analytic.bnb_footprint_bytes(facts, True)["total_bytes"]


@pytest.mark.parametrize("targets", [LORA_TARGETS, ALL_LINEAR], ids=["seven_names", "all_linear"])
def test_lora_count_is_pefts_on_the_real_4bit_model(family, targets):
    name, folder = family
    if name in FUSED and targets != ALL_LINEAR:
        pytest.skip("Phi-3 has no q_proj, k_proj, v_proj, gate_proj, up_proj: test_phi3_with_the_seven_llama_names_stops")
    from peft import get_peft_model
    model = load_4bit(folder)
    shapes = linear4bit_shapes(model)
    peft_model = get_peft_model(model, peft_lora_config(targets))
    trainable = peft_model.get_nb_trainable_parameters()[0]
    facts = describe(folder, lora(targets))
    assert facts.trainable_params == trainable
    assert sorted(facts.lora_modules) == sorted(peft_model.targeted_module_names)
    # by hand: r x (in + out) of every 4-bit linear the names select (all-linear: every one)
    chosen = [shape for module, shape in shapes.items() if targets == ALL_LINEAR or module.rsplit(".", 1)[-1] in targets]
    assert trainable == sum(R * (i + o) for i, o in chosen)


def test_phi3_with_the_seven_llama_names_stops_with_the_fix(tmp_path):
    """peft alone adapts the 2 of the 7 names Phi-3 has and says nothing; the library stops and names the fix."""
    from peft import get_peft_model
    folder = save_tiny_model(tmp_path, "phi3", VOCAB)
    with pytest.raises(LoraTargetError) as stopped:
        describe(folder, lora(LORA_TARGETS))
    message = str(stopped.value)
    for name in ("q_proj", "gate_proj", "qkv_proj", "gate_up_proj", "all-linear"):
        assert name in message, message
    quant = dict(quant_type="nf4", double_quant=True, compute_dtype="fp32")
    with pytest.raises(LoraTargetError) as training:  # the training path, on the loaded 4-bit model: the same words
        build_qlora(folder, quant, lora(LORA_TARGETS), "fp32", cuda=False, gradient_checkpointing=False)
    assert str(training.value) == message
    model = load_4bit(folder)
    with pytest.raises(LoraTargetError):
        check_lora_targets(model, LORA_TARGETS)
    silent = get_peft_model(model, peft_lora_config(LORA_TARGETS))
    assert sorted({m.rsplit(".", 1)[-1] for m in silent.targeted_module_names}) == ["down_proj", "o_proj"]
    h, inter, layers = (TINY["phi3"][k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers"))
    assert silent.get_nb_trainable_parameters()[0] == layers * R * ((h + h) + (inter + h))  # o_proj, down_proj only


@pytest.mark.parametrize("variant, checkpointing", [("full", False), ("full", True), ("qlora", False), ("qlora", True)])
def test_counted_flops_equal_the_executed_formula_where_it_holds(family, variant, checkpointing):
    name, folder = family
    targets = ALL_LINEAR if name in FUSED else LORA_TARGETS
    facts = describe(folder, lora(targets) if variant == "qlora" else None)
    r = R if variant == "qlora" else 0
    if name in FUSED:
        caveats = analytic.executed_formula_caveats(facts, SEQ)
        assert caveats and "qkv_proj" in caveats[0] and "gate_up_proj" in caveats[0]
        with pytest.raises(analytic.FormulaNotApplicable, match="not the seven separate projections"):
            analytic.executed_flops_per_token(facts, SEQ, variant, r, checkpointing)
        return
    if variant == "full":
        model = build_full(folder, "fp32", checkpointing)
    else:
        quant = dict(quant_type="nf4", double_quant=True, compute_dtype="fp32")
        model = build_qlora(folder, quant, lora(targets), "fp32", cuda=False, gradient_checkpointing=checkpointing)
    counted = counted_step_flops(model, one_batch(), None)["total"]
    assert analytic.executed_formula_caveats(facts, SEQ) == []
    assert counted == analytic.executed_flops_per_token(facts, SEQ, variant, r, checkpointing) * BATCH * SEQ


def test_phi3_model_flops_agree_with_the_counters_parts(tmp_path):
    """Phi-3's executed formula does not apply (above), but the model-FLOPs formula (6N + 12·L·H·Q·T per token) is
    layout-free. Full fine-tuning without recomputation runs every linear's weight three times (forward, input
    gradient, weight gradient: 6 FLOPs per weight and token), and attention forward (4·L·H·Q·T) plus torch's
    flash backward; the model FLOPs count attention three times its forward."""
    folder = save_tiny_model(tmp_path, "phi3", VOCAB)
    model = build_full(folder, "fp32")
    per_operator = counted_step_flops(model, one_batch(), None)["per_operator"]
    tokens = BATCH * SEQ
    weights = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    matmuls = sum(n for op, n in per_operator.items() if "scaled_dot_product" not in op)
    assert matmuls == 6 * weights * tokens
    arch = TINY["phi3"]
    head = arch["hidden_size"] // arch["num_attention_heads"]
    attention_forward = 4 * arch["num_hidden_layers"] * arch["num_attention_heads"] * head * SEQ * tokens
    assert per_operator[ATTENTION_FORWARD] == attention_forward
    facts = describe(folder)
    assert analytic.model_formula_caveats(facts, SEQ) == []
    assert analytic.model_flops_per_token(facts, SEQ, "full") * tokens == matmuls + 3 * attention_forward


def test_pretraining_from_scratch_trains_a_qwen2_and_keeps_its_layout(tmp_path):
    """model.source: pretrain with a non-LLaMA family (the whole DAG runs it with LLaMA; the hub run loads a Qwen2):
    qrepro.model.base.pretrain builds the declared Qwen2 and trains it, its q/k/v biases learn and the output head
    stays the embedding's weight."""
    from datasets import Dataset, DatasetDict

    from qrepro.data.tokenizer import train_bpe
    from qrepro.model.base import pretrain

    rows = [f"row {i} of the city {i % 7} and the river {i % 5} ." for i in range(64)]
    tokenizer = train_bpe(rows, 300)
    ids = [tokenizer(row)["input_ids"][:16] for row in rows]
    ids = [row + [tokenizer.eos_token_id] * (16 - len(row)) for row in ids]  # padded to one length
    DatasetDict({"train": Dataset.from_dict({"input_ids": ids})}).save_to_disk(tmp_path / "data")
    arch = TINY["qwen2"]
    settings = dict(max_steps=6, batch_size=8, learning_rate=3e-3, warmup_steps=1, save_steps=6, logging_steps=1)
    model, history = pretrain(tokenizer, str(tmp_path / "data"), arch, settings, seed=0, precision="fp32", cuda=False,
                              threads=1, work_dir=str(tmp_path / "work"))
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.hidden_size == arch["hidden_size"]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied, as declared
    # the biases learned: against the same seed's untrained model, built here
    from qrepro.model.causal_lm import build_config, random_model
    initial = random_model(build_config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id), 0)
    for name in ("q_proj", "k_proj", "v_proj"):
        before, after = (getattr(m.model.layers[0].self_attn, name).bias for m in (initial, model))
        assert not torch.equal(before, after), name
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0]
