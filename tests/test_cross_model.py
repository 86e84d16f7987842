"""Beyond the paper: the compression claim across published models (rule compression_across_models, Table 14).

Each shipped architecture (configs/architectures/) is checked against the config schema and against its published
parameter count; TinyLlama's row against the paper-architecture computation (rule paper_structure_metrics); one model's
row against arithmetic written out here from its config numbers. All on the meta device: no weights, no hub."""
from __future__ import annotations

import functools
import math

import jsonschema
import pytest
import yaml

from conftest import LORA_TARGETS, PAPER, ROOT
from qrepro import catalogue
from qrepro.config_checks import merged_profile
from qrepro.derived import FORMULAS
from qrepro.evaluation.cross_model import compression_records
from qrepro.evaluation.records import architecture_records, structure_records
from qrepro.model.anatomy import describe
from qrepro.model.causal_lm import build_config

ARCHITECTURES = ROOT / "configs/architectures"
PAPER_PROFILE = merged_profile(ROOT / "config.yaml", ROOT / "configs/paper.yaml")
QLORA = PAPER_PROFILE["training"]["qlora"]
LORA = {key: value for key, value in QLORA["lora"].items() if key != "target_modules"}
MB, GB = 1024 ** 2, 1024 ** 3


def shipped(stem: str) -> dict:
    return yaml.safe_load((ARCHITECTURES / f"{stem}.yaml").read_text())


STEMS = sorted(path.stem for path in ARCHITECTURES.glob("*.yaml"))


@functools.cache
def row(stem: str) -> dict:
    """The records rule compression_across_models writes for one model, with the rule's params (the paper's recipe)."""
    arch = shipped(stem)["architecture"]
    records = compression_records(build_config(arch, arch["vocab_size"], 1, 2), LORA, QLORA["lora"]["target_modules"],
                                  "all-linear", QLORA["quantization"]["double_quant"],
                                  PAPER_PROFILE["training"]["full"]["optim"],
                                  PAPER_PROFILE["training"]["full"]["weights_dtype"], QLORA["optim"], ["test"], {})
    return {name: record["value"] for name, record in records.items()}


def test_the_catalogue_declares_one_scope_per_shipped_architecture():
    scopes = catalogue.load(ROOT / "paper/metrics.yaml").scopes("compression_across_models")
    assert sorted(scope.removeprefix("published_") for scope in scopes) == STEMS
    assert len(STEMS) == 8


@pytest.mark.parametrize("stem", STEMS)
def test_each_architecture_file_is_valid_for_the_config_schema(stem):
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    architecture = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                    **schema["properties"]["model"]["properties"]["architecture"]}
    data = shipped(stem)
    jsonschema.Draft202012Validator(architecture).validate(data["architecture"])
    assert data["hub_id"].count("/") == 1
    assert data["config_json"].startswith(f"https://huggingface.co/{data['hub_id']}/")


def test_a_key_the_schema_refuses_for_that_family_is_refused():
    """The check above is not vacuous: head_dim is not a Qwen2 setting."""
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    architecture = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                    **schema["properties"]["model"]["properties"]["architecture"]}
    with pytest.raises(jsonschema.ValidationError):
        qwen = shipped("qwen2_5_7b")["architecture"]
        jsonschema.Draft202012Validator(architecture).validate({**qwen, "head_dim": 128})


@pytest.mark.parametrize("stem", STEMS)
def test_each_models_parameter_count_is_its_published_count(stem):
    """The independent value: the count published for the model (hub safetensors metadata, the paper for TinyLlama),
    written in its architecture file."""
    assert row(stem)["total_params"] == shipped(stem)["published_total_params"]["value"]


def test_tinyllamas_row_equals_the_paper_architecture_computation():
    """Table 14's TinyLlama row and the paper-architecture files (rules paper_structure_metrics and
    architecture_comparisons) come from the same numbers: the shipped file is configs/paper.yaml's architecture, and
    both computations agree."""
    arch = PAPER_PROFILE["model"]["architecture"]
    assert shipped("tinyllama_1_1b_chat_v1_0")["architecture"] == arch
    facts = describe(build_config(arch, arch["vocab_size"], 1, 2), QLORA["lora"])
    paper = {name: r["value"] for name, r in {**architecture_records(facts, []),
                                              **structure_records(facts, PAPER_PROFILE["data"]["max_length"],
                                                                  QLORA["quantization"]["double_quant"], [])}.items()}
    ratio = FORMULAS["ratio"][1]
    tiny = row("tinyllama_1_1b_chat_v1_0")
    assert tiny["total_params"] == paper["total_params"] == PAPER["t2_total_params"]
    assert tiny["lora_trainable_params_all_linear"] == paper["lora_trainable_params"]
    for name in ("size_fp16_mb_paper", "size_qlora_total_mb_paper", "size_qlora_bnb_mb"):
        assert tiny[name] == paper[name], name
    assert tiny["lora_trainable_percent_paper_names"] == tiny["lora_trainable_percent_all_linear"] \
        == paper["lora_trainable_percent"]
    assert tiny["compression_ratio_paper_formula"] == ratio(paper["size_fp16_mb_paper"],
                                                            paper["size_qlora_total_mb_paper"])
    assert tiny["compression_ratio_bnb_layout"] == ratio(paper["size_fp16_mb_paper"], paper["size_qlora_bnb_mb"])
    assert round(tiny["compression_ratio_paper_formula"], 2) == PAPER["t5_compression"]


def nf4_bytes(n: int) -> int:
    """One NF4 weight of n values with double quantization, written out: two values per byte, one 8-bit absmax per
    block of 64, one fp32 absmax per 256 of those, a 256-entry fp32 code book and an fp32 offset."""
    blocks = math.ceil(n / 64)
    return math.ceil(n / 2) + blocks + 4 * math.ceil(blocks / 256) + 256 * 4 + 4


def test_llama_2_7b_by_hand():
    h, inter, layers, vocab, r = 4096, 11008, 32, 32000, LORA["r"]   # config.json; 32 KV heads = 32 heads of 128
    linears = [h * h] * 4 + [h * inter] * 3                          # q, k, v, o; gate, up, down (in x out)
    lora = 4 * r * (h + h) + 3 * r * (h + inter)
    quantized = layers * sum(linears)
    sixteen_bit = 2 * vocab * h + layers * 2 * h + h     # embeddings, lm_head, two norms a layer, final norm
    total = quantized + sixteen_bit
    trainable = layers * lora
    bnb = layers * sum(nf4_bytes(n) for n in linears) + 2 * sixteen_bit + 4 * trainable
    got = row("llama_2_7b")
    assert got["total_params"] == total == 6_738_415_616
    assert got["lora_trainable_params_all_linear"] == trainable
    assert got["compression_ratio_paper_formula"] == pytest.approx(2 * total / (0.5 * total + 2 * trainable), rel=1e-12)
    assert got["size_qlora_bnb_mb"] == pytest.approx(bnb / MB, rel=1e-12)
    assert got["compression_ratio_bnb_layout"] == pytest.approx(2 * total / bnb, rel=1e-12)
    full = total * (4 + 4 + 8)                           # fp32 weights and gradients, AdamW's two fp32 moments
    qlora = bnb - 4 * trainable + trainable * (4 + 4 + 2)  # NF4 base; fp32 LoRA weights and gradients, 8-bit moments
    assert got["training_state_full_gb"] == pytest.approx(full / GB, rel=1e-12)
    assert got["training_state_qlora_gb"] == pytest.approx(qlora / GB, rel=1e-12)
    assert got["lora_trainable_percent_paper_names"] == pytest.approx(100 * trainable / total, rel=1e-12)


def test_phi3_with_the_papers_seven_names_has_no_share_and_says_why():
    arch = shipped("phi_3_mini_4k_instruct")["architecture"]
    records = compression_records(build_config(arch, arch["vocab_size"], 1, 2), LORA, list(LORA_TARGETS), "all-linear",
                                  True, "adamw_torch", "fp32", "paged_adamw_8bit", ["test"], {})
    share = records["lora_trainable_percent_paper_names"]
    assert share["value"] is None
    assert "qkv_proj" in share["details"]["stopped"] and "gate_up_proj" in share["details"]["stopped"]
    # all-linear adapts the fused layers: r x (in + out) of qkv_proj, o_proj, gate_up_proj, down_proj in 32 layers
    h, inter, r = 3072, 8192, LORA["r"]
    hand = 32 * r * ((h + 3 * h) + (h + h) + (h + 2 * inter) + (inter + h))
    assert records["lora_trainable_params_all_linear"]["value"] == hand
