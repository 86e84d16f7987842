"""model.source: hub and data.source: hf (the paper profile's path) through the real loading code, offline.

A Hugging Face cache is built in a temporary folder: a tiny Qwen2 (random weights, safetensors; a tiny LLaMA, the
paper's family, for the loading test too) and its
tokenizer under a hub id at a fixed 40-hex revision (huggingface_hub layout: models--org--name/{blobs, refs/main,
snapshots/<rev>/}), and WikiText-shaped data prepared into the datasets cache the way `datasets` stores a hub
dataset (<name>/<config>/<version>/<commit>/). datasets 5 in offline mode reloads hub datasets from that folder
(load.CachedDatasetModuleFactory -> packaged_modules.cache), not from the hub cache, so that is what is built:
a local copy of a hub dataset repo (README configs + parquet files, as Salesforce/wikitext is laid out) is
prepared with load_dataset_builder(...).download_and_prepare() and its folder named after the commit.
"""
import hashlib
import json
import subprocess
import sys

import pytest

from conftest import ROOT, copy_workflow, snakemake
from hub_cache import (DATA_REV, MODEL_FAMILY, MODEL_ID, MODEL_REV, OTHER_REV, SPLITS, TINY, build_hf_cache, hf_rows,
                       model_id, shape)
from qrepro.config_checks import merged_profile
from qrepro.metrics_io import read_metric

LOADING = r"""
import json, sys
import torch
from qrepro.data.splits import load_corpus
from qrepro.data.checks import DataValidationError
from qrepro.hub import HubUnavailableError
from qrepro.model.causal_lm import load_pretrained
from qrepro.data.tokenizer import from_model, model_tokenizer_revision

model_id, model_rev, data_rev, other_rev, out = sys.argv[1:]
found = {}

def hf(config, revision=None):
    return load_corpus("hf", seed=0, synthetic={}, hf={"name": "wikitext", "config": config, "revision": revision},
                       local_dir=None, max_length=64)

def error(fn, *args):
    try:
        fn(*args)
    except (DataValidationError, HubUnavailableError) as err:
        return type(err).__name__ + ": " + str(err)
    return None

corpus = hf("wikitext-2-raw-v1")
found["rows"] = {split: list(corpus.raw[split]["text"]) for split in ("train", "validation", "test")}
found["provenance"], found["warnings"] = corpus.provenance, corpus.warnings
found["pinned"] = hf("wikitext-2-raw-v1", data_rev).provenance["revision"]
found["errors"] = {name: error(hf, *args) for name, args in {
    "wrong_pin": ("wikitext-2-raw-v1", other_rev), "no_text": ("no-text",), "no_validation": ("no-validation",),
    "blank_test": ("blank-test",), "not_cached": ("wikitext-103-raw-v1",)}.items()}
found["errors"]["model_not_cached"] = error(load_pretrained, model_id, other_rev)
for revision in (None, model_rev):
    tok = from_model(model_id, revision)
    found[f"tokens_{revision}"] = tok(" The Kōzuki Line ( 上月線 ) opened in 1923 . \n")["input_ids"]
found["tokenizer"] = [tok.pad_token, tok.eos_token, tok.padding_side, model_tokenizer_revision(model_id, None)]
model = load_pretrained(model_id, revision=model_rev, dtype=torch.float16)
found["model"] = {"dtype": str(model.dtype), **{k: getattr(model.config, k) for k in (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
    "vocab_size")}}
model.save_pretrained(out + ".model")  # as the snapshot was written: tied weights stored once
json.dump(found, open(out, "w"))
"""


def _hub_weights_fp16(hf_cache) -> dict:
    import torch
    from safetensors.torch import load_file
    return {k: v.to(torch.float16) for k, v in load_file(hf_cache["stage"] / "model.safetensors").items()}


@pytest.fixture(params=["llama", MODEL_FAMILY])
def family_cache(request, tmp_path_factory):
    """The paper's family (LLaMA) and the hub run's (Qwen2), each in a cache of its own."""
    if request.param == MODEL_FAMILY:
        return request.getfixturevalue("hf_cache")
    return build_hf_cache(tmp_path_factory.mktemp(f"hf_{request.param}"), request.param)


def test_real_loading_code_reads_the_offline_cache(family_cache, tmp_path):
    import torch
    from safetensors.torch import load_file

    hf_cache, family = family_cache, family_cache["family"]
    repo_id = model_id(family)
    out = tmp_path / "found.json"
    result = subprocess.run([sys.executable, "-c", LOADING, repo_id, MODEL_REV, DATA_REV, OTHER_REV, str(out)],
                            cwd=ROOT / "scripts", env=hf_cache["env"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(out.read_text())

    # data: the rows the cache holds, the commit they were prepared under, with and without a pin
    assert found["rows"] == {split: hf_rows(split) for split in SPLITS}
    assert found["provenance"] == {"source": "hf", "dataset": "wikitext", "config": "wikitext-2-raw-v1",
                                   "requested_revision": None, "revision": DATA_REV}
    assert found["pinned"] == DATA_REV
    long_rows = sum(1 for row in hf_rows("train") if len(row) > 512)
    assert found["warnings"] == [
        f"dataset wikitext (config wikitext-2-raw-v1) split train: {long_rows} of "
        f"{sum(1 for r in hf_rows('train') if r.strip())} non-empty rows longer than 512 characters (about 2 x "
        f"data.max_length=64 tokens at ~4 characters per token; longest: row 4 counting from 1, "
        f"{max(len(r) for r in hf_rows('train'))} characters); truncation to max_length drops most of each. "
        "Raise data.max_length, split those rows, or set data.packing: true"]
    errors = found["errors"]
    assert errors["wrong_pin"].startswith(
        f"DataValidationError: dataset wikitext (config wikitext-2-raw-v1): data.hf.revision pins {OTHER_REV} but "
        f"revision {DATA_REV} was loaded (from {hf_cache['root'] / 'datasets/wikitext/wikitext-2-raw-v1/0.0.0'}/"
        f"{DATA_REV}); without hub access datasets reloads the newest cached copy.")
    assert errors["no_text"].startswith("DataValidationError: dataset wikitext (config no-text) split train has no "
                                        "'text' column (columns found: content); choose a dataset and config")
    assert errors["no_validation"].startswith(
        "DataValidationError: dataset wikitext (config no-validation) has no validation split (splits found: train, "
        "test); choose a dataset and config (data.hf)")
    assert errors["blank_test"].startswith(
        "DataValidationError: dataset wikitext (config blank-test) split test has 3 rows and every one is blank")
    assert errors["not_cached"].startswith(
        "HubUnavailableError: Could not load dataset wikitext/wikitext-103-raw-v1 from the Hugging Face hub: "
        "HF_HUB_OFFLINE=1 is set, so nothing is downloaded (the loader said: ValueError: Couldn't find cache for "
        "wikitext for config 'wikitext-103-raw-v1' Available configs in the cache: [")
    assert errors["model_not_cached"].startswith(f"HubUnavailableError: Could not load model {repo_id} from the "
                                                 "Hugging Face hub: HF_HUB_OFFLINE=1 is set")

    # tokenizer: the cached one, paper settings, the commit it came from. A LLaMA repo's files tokenize as they are;
    # transformers 5 reads a Qwen2 repo's with its Qwen2Tokenizer, whose own pre-tokenizer (digits one by one)
    # replaces the one in tokenizer.json (here the files alone would keep "1923" in fewer pieces)
    text = " The Kōzuki Line ( 上月線 ) opened in 1923 . \n"
    if family == "qwen2":
        from transformers import Qwen2Tokenizer
        expected = Qwen2Tokenizer.from_pretrained(hf_cache["stage"])(text)["input_ids"]
    else:
        expected = hf_cache["tokenizer"](text)["input_ids"]
    assert found["tokens_None"] == found[f"tokens_{MODEL_REV}"] == expected
    assert found["tokenizer"] == ["</s>", "</s>", "right", MODEL_REV]

    # model: the architecture and the very weights in the snapshot, loaded as float16
    assert found["model"] == {"dtype": "torch.float16", "vocab_size": 512, **shape(family)}
    loaded, original = load_file(str(out) + ".model/model.safetensors"), _hub_weights_fp16(hf_cache)
    assert loaded.keys() == original.keys()
    assert all(torch.equal(loaded[k], original[k]) for k in original)


# What the whole-run test below may change of configs/paper.yaml: where the model and data come from (the cached
# tiny model and WikiText-shaped data), scale, and what a CPU cannot do (fp16). Everything else is the paper's recipe.
HUB_IDS = {"model.hub_id", "model.revision", "model.architecture"}
SCALE = {"data.max_length", "training.max_steps", "training.warmup_steps", "training.eval_steps",
         "training.save_steps", "training.logging_steps", "training.step_time_warmup", "training.eval_max_samples",
         "evaluation.repetitions", "evaluation.paper_perplexity_samples", "evaluation.new_tokens"}
DEVICE = {"allow_cpu", "training.precision", "evaluation.dtype", "training.qlora.quantization.compute_dtype"}


def _leaves(mapping: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        if isinstance(value, dict) and key != "architecture":
            keys |= _leaves(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
def test_paper_profile_runs_whole_offline_from_the_hub_cache(hf_cache, tmp_path, monkeypatch):
    """configs/paper.yaml (hub model, wikitext from datasets, the model's tokenizer, float16 load, the paper's
    recipe) through train, evaluate and the report, offline: its hub ids point at the cached tiny model and only
    scale (and fp16, which needs CUDA) is overridden. The cached model is a Qwen2 (tests/hub_cache.py), so this one
    whole run is also the any-causal-LM run: a family other than the paper's LLaMA through every stage."""
    import torch
    import yaml
    from safetensors.torch import load_file

    workdir = copy_workflow(tmp_path / "hub")
    overlay = {
        "allow_cpu": True,
        "data": {"max_length": 64},
        "model": {"hub_id": MODEL_ID, "revision": MODEL_REV, "architecture": {**TINY, "vocab_size": 512}},
        "training": {"precision": "fp32", "max_steps": 8, "warmup_steps": 2, "eval_steps": 4, "save_steps": 4,
                     "logging_steps": 2, "step_time_warmup": 2, "eval_max_samples": 16,
                     "qlora": {"quantization": {"compute_dtype": "fp32"}}},
        "evaluation": {"dtype": "fp32", "repetitions": 2, "paper_perplexity_samples": 20, "new_tokens": 8},
    }
    assert _leaves(overlay) <= HUB_IDS | SCALE | DEVICE
    (workdir / "hub.yaml").write_text(yaml.safe_dump(overlay))
    for key in ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(key, hf_cache["env"][key])
    snakemake(workdir, "report", "--configfile", "configs/paper.yaml", "hub.yaml", "--cores", "2", timeout=1200)

    card = "results/metrics/data_card"
    value = lambda path: read_metric(workdir / path)["value"]  # noqa: E731
    assert value(f"{card}/data_source.json") == "hf"
    assert value(f"{card}/data_location.json") == "wikitext/wikitext-2-raw-v1"
    assert value(f"{card}/data_revision.json") == DATA_REV  # resolved, though paper.yaml pins none
    for split in SPLITS:
        rows = hf_rows(split)
        assert value(f"{card}/{split}_rows.json") == len(rows) == value(f"results/metrics/dataset/{split}_samples.json")
        assert value(f"{card}/{split}_sha256.json") == hashlib.sha256(
            b"".join(row.encode() + b"\xff" for row in rows)).hexdigest()
        assert value(f"{card}/{split}_empty_rows.json") == rows.count("")
    assert value(f"{card}/pretrain_rows.json") is None and value(f"{card}/tokenizer_corpus_sha256.json") is None
    assert value(f"{card}/tokenizer_name.json") == MODEL_ID
    assert value(f"{card}/tokenizer_revision.json") == MODEL_REV
    assert value("results/metrics/dataset/vocab_size.json") == 512
    saved = load_file(workdir / "results/base_model/model.safetensors")
    original = _hub_weights_fp16(hf_cache)
    assert saved.keys() == original.keys() and all(torch.equal(saved[k], original[k]) for k in original)

    # the recipe that trained is the paper's (configs/paper.yaml over config.yaml), read back from what ran
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    base = yaml.safe_load((ROOT / "config.yaml").read_text())["training"]
    for variant in ("full", "qlora"):
        ran = json.loads((workdir / f"results/train/{variant}/hyperparameters.json").read_text())
        recipe = {**base[variant], **paper["training"].get(variant, {})}
        assert ran["per_device_train_batch_size"] == recipe["batch_size"]
        assert ran["gradient_accumulation_steps"] == recipe["gradient_accumulation_steps"]
        assert ran["learning_rate"] == recipe["learning_rate"] and ran["max_steps"] == 8
        if variant == "qlora":
            lora = recipe["lora"]
            assert (ran["lora_r"], ran["lora_alpha"], ran["lora_dropout"]) == (lora["r"], lora["alpha"], lora["dropout"])
            assert ran["target_modules"] == sorted(lora["target_modules"]) and ran["quant_type"] == "nf4"
            assert ran["double_quant"] is True
    # evaluated from the trained files, and the report built from them
    for model in ("base", "full", "qlora"):
        assert 1 < value(f"results/metrics/{model}/perplexity_token.json") < 10 * 512
    html = (workdir / "report/report.html").read_text()
    assert "Paper profile: TinyLlama-1.1B-Chat-v1.0 on WikiText-2" in html and MODEL_ID in html
    _the_run_is_the_qwen2_it_loaded(workdir, html)


def _the_run_is_the_qwen2_it_loaded(workdir, html):
    """The family's facts in the run's files against computations apart from the code that wrote them."""
    import re

    from transformers import AutoModelForCausalLM

    m = lambda scope, name: read_metric(workdir / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    assert MODEL_FAMILY == "qwen2"
    model = AutoModelForCausalLM.from_pretrained(workdir / "results/base_model")
    assert type(model).__name__ == m("architecture", "model_family") == "Qwen2ForCausalLM"
    assert model.model.layers[0].self_attn.q_proj.bias is not None  # Qwen2's q/k/v biases came through
    total = sum(p.numel() for p in model.parameters())
    assert m("architecture", "total_params") == m("full", "total_params") == m("qlora", "total_params") == total
    assert m("architecture", "tie_word_embeddings") is True
    # LoRA by hand: r x (in + out) of the paper's seven projections, from the cached model's shapes
    lora = merged_profile(ROOT / "config.yaml", ROOT / "configs/paper.yaml")["training"]["qlora"]["lora"]
    h, inter, layers = TINY["hidden_size"], TINY["intermediate_size"], TINY["num_hidden_layers"]
    kv = TINY["num_key_value_heads"] * h // TINY["num_attention_heads"]
    per_layer = 2 * (h + h) + 2 * (h + kv) + 2 * (h + inter) + (inter + h)  # q, o; k, v; gate, up; down
    assert m("qlora", "trainable_params") == m("structure", "lora_trainable_params") == lora["r"] * per_layer * layers
    # torch's counter over one real step against the executed formula, which holds for Qwen2's separate projections
    for variant in ("full", "qlora"):
        executed = read_metric(workdir / f"results/metrics/{variant}/flops_per_step_executed.json")
        assert executed["details"]["formula_caveats"] == []
        assert m(variant, "flops_per_step_counted") == pytest.approx(executed["value"], rel=1e-3)
    # the report names the family that ran, not the paper's LLaMA: on the PDF's page one, in the HTML, in Table 2
    said = f"{MODEL_ID} @ {MODEL_REV} (Qwen2ForCausalLM, {total:,} parameters)"
    page_one = subprocess.run(["pdftotext", "-l", "1", str(workdir / "report/report.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
    page_one = " ".join(page_one.split())
    assert MODEL_ID in page_one and f"(Qwen2ForCausalLM, {total:,} parameters)" in page_one
    assert said in " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert "Qwen2ForCausalLM" in (workdir / "results/tables/table02.csv").read_text()
