"""Every formula against hand-computed values, and the measurements against direct computations."""
import math

import pytest
import torch

from qrepro.evaluation.footprint import memory_bytes
from qrepro.evaluation.perplexity import line_break_ids, paper_protocol, per_row, token_level
from conftest import PAPER
from qrepro.model import analytic
from qrepro.model.anatomy import describe
from tiny_models import save_tiny_model, tiny_model as build_tiny_model

N, TRAINABLE = PAPER["t2_total_params"], PAPER["t6_trainable_qlora"]


def test_paper_formulas_reproduce_the_published_numbers():
    p = PAPER
    flops = analytic.paper_flops_per_step(N, TRAINABLE, seq_len=p["t1_max_seq_length"])
    assert round(flops["full"] / 1e12, 2) == p["t7_flops_full"] and round(flops["qlora"] / 1e12, 2) == p["t7_flops_qlora"]
    assert flops["full"] == 6 * N * 512 * 4
    sizes = analytic.paper_sizes_mb(N, TRAINABLE)
    assert [round(sizes[k], 2) for k in ("fp16", "base_4bit", "adapters", "qlora_total")] == [
        p["t5_fp16_mb"], p["t5_base_4bit_mb"], p["t5_adapters_mb"], p["t5_qlora_total_mb"]]
    assert round(sizes["fp16"] / sizes["qlora_total"], 2) == p["t5_compression"]
    assert round(100 * (1 - sizes["qlora_total"] / sizes["fp16"]), 1) == p["t5_reduction_percent"]
    assert round(100 * TRAINABLE / N, 2) == p["t6_percent_qlora"]


def _quantized_linear(double_quant, out_features=4096, in_features=4096):
    import bitsandbytes as bnb
    layer = bnb.nn.Linear4bit(in_features, out_features, bias=False, quant_type="nf4",
                              compress_statistics=double_quant, compute_dtype=torch.bfloat16)
    layer.weight = bnb.nn.Params4bit(torch.randn(out_features, in_features, dtype=torch.bfloat16) * 0.02,
                                     requires_grad=False, quant_type="nf4", compress_statistics=double_quant)
    layer.weight = layer.weight._quantize("cpu") if hasattr(layer.weight, "_quantize") else layer.weight
    return layer.to("cpu")


@pytest.mark.parametrize("double_quant, bits", [(True, 4.127), (False, 4.5)])
def test_nf4_storage_bits_on_a_real_bitsandbytes_layer(double_quant, bits):
    layer = _quantized_linear(double_quant)
    assert layer.weight.quant_state is not None
    measured = memory_bytes(layer)
    per_weight = 8 * (measured["parameters"] + measured["quant_state"]) / (4096 * 4096)
    assert per_weight == pytest.approx(bits, abs=0.001)
    assert measured["parameters"] + measured["quant_state"] == analytic.quantized_linear_bytes(4096 * 4096, double_quant)


def test_analytic_bnb_footprint_equals_the_loaded_model(tmp_path):
    """The paper's layout; tests/test_families.py checks the same for five families."""
    from qrepro.model.loading import load_4bit_base
    save_tiny_model(tmp_path, "llama", 256)
    model = load_4bit_base(str(tmp_path), dict(quant_type="nf4", double_quant=True), "bf16", cuda=False)
    measured = memory_bytes(model)
    assert measured["parameters"] + measured["quant_state"] == analytic.bnb_footprint_bytes(describe(str(tmp_path)), True)["total_bytes"]


class _Tokenizer:
    """Whitespace tokenizer over digits: deterministic ids, known lengths."""
    eos_token_id = 0

    def __call__(self, text, return_tensors=None, truncation=False, max_length=None, padding=None):
        ids = [int(t) % 50 + 1 for t in text.split()]
        mask = [1] * len(ids)
        if padding == "max_length":
            ids, mask = ids[:max_length] + [0] * (max_length - len(ids)), mask[:max_length] + [0] * (max_length - len(ids))
        out = {"input_ids": torch.tensor([ids]), "attention_mask": torch.tensor([mask])}
        return type("Enc", (dict,), {"input_ids": out["input_ids"]})(out)


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_model("llama", vocab=64, seed=1, eos=0).eval()


def test_token_level_perplexity_is_exp_mean_nll(tiny_model):
    texts = [" ".join(str(i * 7 + j) for j in range(30)) for i in range(3)]
    ids = _Tokenizer()("\n\n".join(texts)).input_ids
    assert ids.shape[1] == 90
    with torch.no_grad():
        logits = tiny_model(input_ids=ids).logits[0, :-1]
        nll = torch.nn.functional.cross_entropy(logits.float(), ids[0, 1:], reduction="sum").item()
    one_window = token_level(tiny_model, _Tokenizer(), texts, max_length=128, stride=128)
    assert one_window["scored_tokens"] == 89
    assert one_window["perplexity"] == pytest.approx(math.exp(nll / 89), rel=1e-5)
    sliding = token_level(tiny_model, _Tokenizer(), texts, max_length=32, stride=16)
    assert sliding["scored_tokens"] == 89  # every token after the first is scored exactly once
    assert sliding["perplexity"] > 1
    # the same windows run several at a time give the same sums
    for batch_size in (2, 3, 16):
        batched = token_level(tiny_model, _Tokenizer(), texts, max_length=32, stride=16, batch_size=batch_size)
        assert batched["scored_tokens"] == 89
        assert batched["nll_sum"] == pytest.approx(sliding["nll_sum"], rel=1e-5)
        # and the same per-window sums, the units the bootstrap resamples
        assert batched["window_tokens"] == sliding["window_tokens"]
        assert batched["window_nll"] == pytest.approx(sliding["window_nll"], rel=1e-5)
    # the windows' scored positions by hand: [0, 32) scores 31 tokens, then each stride adds 16, the last the rest
    assert sliding["window_tokens"] == [31, 16, 16, 16, 10] and len(sliding["window_nll"]) == sliding["windows"]
    assert math.fsum(sliding["window_nll"]) == pytest.approx(sliding["nll_sum"], rel=1e-12)


def _direct_nll(model, ids: list[int], scored: list[bool]) -> tuple[float, int]:
    """Sum NLL over the positions marked scored (position 0 never is), from one forward pass on ids."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
    keep = torch.tensor(scored[1:])
    return nll[keep].sum().item(), int(keep.sum())


def test_token_level_leaves_line_break_targets_out(tiny_model):
    texts = [" ".join(str(i * 7 + j) for j in range(30)) for i in range(3)]
    ids = _Tokenizer()("\n\n".join(texts)).input_ids[0].tolist()
    masked = frozenset({ids[5], ids[40]})  # stand-ins for line-break ids
    nll, count = _direct_nll(tiny_model, ids, [i not in masked for i in ids])
    result = token_level(tiny_model, _Tokenizer(), texts, max_length=128, stride=128, masked_ids=masked)
    assert result["scored_tokens"] == count == 89 - sum(i in masked for i in ids[1:])
    assert result["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)


def test_per_row_scores_each_row_alone_and_long_rows_in_windows(tiny_model):
    texts = ["1 2 3 4 5", " ", " ".join(str(j) for j in range(40)), "", "7 8 9"]
    masked = frozenset({9})  # id of "8"
    expected_nll, expected_tokens = 0.0, 0
    for text in (texts[0], texts[4]):  # short rows: one pass each, no context from other rows
        ids = _Tokenizer()(text).input_ids[0].tolist()
        nll, count = _direct_nll(tiny_model, ids, [i not in masked for i in ids])
        expected_nll, expected_tokens = expected_nll + nll, expected_tokens + count
    long_ids = _Tokenizer()(texts[2]).input_ids[0].tolist()  # 40 tokens in windows [0,16) [8,24) [16,32) [24,40)
    for begin, first_scored in ((0, 1), (8, 16), (16, 24), (24, 32)):
        window = long_ids[begin:begin + 16]
        nll, count = _direct_nll(tiny_model, window, [begin + k >= first_scored and t not in masked
                                                      for k, t in enumerate(window)])
        expected_nll, expected_tokens = expected_nll + nll, expected_tokens + count
    for batch_size in (1, 3):
        result = per_row(tiny_model, _Tokenizer(), texts, max_length=16, stride=8, batch_size=batch_size,
                         masked_ids=masked)
        assert result["rows"] == 3 and result["row_index"] == [0, 2, 4]
        assert result["scored_tokens"] == expected_tokens == 4 + 39 - 1 + 1
        assert result["nll_sum"] == pytest.approx(expected_nll, rel=1e-5)


def test_line_break_ids_and_window_articles_with_a_trained_bpe(tiny_model):
    from qrepro.data.tokenizer import train_bpe
    rows = [" = Alpha = \n", " \n", " the first article speaks of alpha . \n", " = Beta = \n", " \n",
            " the second article speaks of beta and more . \n"] * 3
    tokenizer = train_bpe(rows, 300)
    breaks = line_break_ids(tokenizer)
    assert breaks and all("\n" in tokenizer.decode([i]) and not tokenizer.decode([i]).strip() for i in breaks)
    assert not any("\n" in tokenizer.decode([i]) for i in range(len(tokenizer)) if i not in breaks)
    articles = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    model = build_tiny_model("llama", vocab=len(tokenizer), seed=1).eval()
    result = token_level(model, tokenizer, rows, max_length=8, stride=4, masked_ids=breaks, row_articles=articles)
    enc = tokenizer("\n\n".join(rows), return_offsets_mapping=True)
    n = len(enc["input_ids"])
    starts = [sum(len(r) + 2 for r in rows[:k]) for k in range(len(rows))]
    # by hand: each window's first scored position (after what earlier windows scored), its character, the row
    # holding that character, the row's article
    windows, expected, prev_end = [], [], 0
    for begin in range(0, n, 4):
        windows.append((begin, max(prev_end, 1)))
        prev_end = min(begin + 8, n)
        if prev_end == n:
            break
    for begin, first in windows:
        first_scored = next((p for p in range(first, begin + 8) if p < len(enc["input_ids"])
                             and enc["input_ids"][p] not in breaks), begin)
        char = enc["offset_mapping"][first_scored][0]
        expected.append(articles[max(k for k, s in enumerate(starts) if s <= char)])
    assert result["window_article"] == expected
    assert sorted(set(expected)) == list(range(6))


def test_paper_protocol_scores_padding_over_the_first_rows(tiny_model):
    texts = ["", "1 2 3 4", " ", "5 6 7"] + ["8 9"] * 200
    result = paper_protocol(tiny_model, _Tokenizer(), texts, max_length=8, n_samples=100)
    assert result["samples"] == 100
    with torch.no_grad():
        first = torch.tensor([[2, 3, 4, 5, 0, 0, 0, 0]])
        mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
        loss = tiny_model(input_ids=first, attention_mask=mask, labels=first).loss.item()  # padding in the labels
    single = paper_protocol(tiny_model, _Tokenizer(), texts, max_length=8, n_samples=1)
    assert single["mean_loss"] == pytest.approx(loss, rel=1e-5)


def test_inference_counts_the_tokens_really_generated():
    """Tokens are counted from the output ids: a model that ends every answer at once generates 1 token unless
    min_new_tokens forces the full length, and tokens/s follows the count, not the setting."""
    from qrepro.data.tokenizer import train_bpe
    from qrepro.evaluation.inference import time_generation

    tokenizer = train_bpe(["the history of artificial intelligence", "climate change has become"] * 20, vocab_size=300)
    tiny_model = build_tiny_model("llama", vocab=len(tokenizer), seed=1).eval()
    prompt = "the history of"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        first = int(tiny_model(input_ids=ids).logits[0, -1].argmax())
    tiny_model.generation_config.eos_token_id = first  # greedy decoding now "ends" on its first token
    stopped = time_generation(tiny_model, tokenizer, [prompt], new_tokens=5, repetitions=2, force_length=False)
    forced = time_generation(tiny_model, tokenizer, [prompt], new_tokens=5, repetitions=2, force_length=True)
    assert stopped["generated_tokens_per_run"] == [1, 1]
    assert forced["generated_tokens_per_run"] == [5, 5]
    assert stopped["tokens_per_s"] < 5 / stopped["max_s"]  # the paper's 50 / time would overstate it
    assert forced["tokens_per_s"] == pytest.approx(5 / forced["median_s"], rel=0.5)


class _Encoded(dict):
    def to(self, device):
        return self


class _LoggingModel:
    """A stand-in for a model that records every generate call: which model ran, in what order."""
    device = torch.device("cpu")

    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def eval(self):
        return self

    def generate(self, input_ids, max_new_tokens, **kwargs):
        self.log.append((self.name, int(input_ids[0, 0])))
        return torch.cat([input_ids, torch.zeros(1, max_new_tokens, dtype=torch.long)], dim=1)


def test_inference_rounds_rotate_the_models_order_and_time_every_prompt_once_per_round():
    """time_rounds: one warm-up per model and prompt, then round r runs the models in the order rotated by r - 1,
    each on every prompt once; each run is labelled with its prompt, round and place in the round."""
    from qrepro.evaluation.inference import rotated_orders, time_rounds

    names = ["full", "qlora", "qlora_merged"]
    assert rotated_orders(names, 4) == [["full", "qlora", "qlora_merged"], ["qlora", "qlora_merged", "full"],
                                        ["qlora_merged", "full", "qlora"], ["full", "qlora", "qlora_merged"]]
    log = []
    tokenizer = lambda prompt, return_tensors: _Encoded(input_ids=torch.tensor([[int(prompt)]]))  # noqa: E731
    tokenizer.eos_token_id = 0
    models = {name: _LoggingModel(name, log) for name in names}
    results = time_rounds(models, tokenizer, ["1", "2"], new_tokens=3, rounds=4)
    warm, timed = log[:6], log[6:]
    assert warm == [(name, prompt) for name in names for prompt in (1, 2)]
    assert timed == [(name, prompt) for order in rotated_orders(names, 4) for name in order for prompt in (1, 2)]
    qlora = results["qlora"]
    assert qlora["run_rounds"] == [1, 1, 2, 2, 3, 3, 4, 4] and qlora["run_prompts"] == [1, 2] * 4
    assert qlora["run_places"] == [2, 2, 1, 1, 3, 3, 2, 2]
    assert qlora["generated_tokens_per_run"] == [3] * 8 and qlora["runs"] == 8
    assert qlora["timed_together"]["round_orders"] == rotated_orders(names, 4)


def test_qlora_footprint_with_its_adapters_as_peft_loads_them(tmp_path):
    """size_qlora_bnb_mb's layout (NF4 base + 16-bit rest + fp32 LoRA) against a QLoRA model loaded for evaluation
    the way model_size measures it: the adapters come back in fp32."""
    from conftest import LORA_TARGETS
    from qrepro.model.loading import load_for_eval
    from qrepro.training.variants import build_qlora
    save_tiny_model(tmp_path / "base", "llama", 256, dtype=torch.bfloat16)
    quant = dict(quant_type="nf4", double_quant=True, compute_dtype="bf16")
    lora = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
    build_qlora(str(tmp_path / "base"), quant, lora, "bf16", cuda=False, gradient_checkpointing=False) \
        .save_pretrained(tmp_path / "adapter")
    model = load_for_eval("qlora", str(tmp_path / "base"), str(tmp_path / "adapter"), quant, "bf16", cuda=False)
    lora_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)  # frozen once loaded
    measured = memory_bytes(model)
    assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}
    expected = analytic.bnb_footprint_bytes(describe(str(tmp_path / "base")), True)["total_bytes"] + 4 * lora_params
    assert measured["parameters"] + measured["quant_state"] == expected
