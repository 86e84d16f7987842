import copy
import subprocess
import sys

import jsonschema
import pytest
import yaml

from conftest import ROOT
from qrepro.config_checks import ConfigError, check, merged_profile, problems

SCHEMA = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def validate(config):
    jsonschema.Draft202012Validator(SCHEMA).validate(config)


def merged(*overrides):
    return merged_profile(DEFAULT, *overrides)


def test_shipped_profiles_are_valid():
    validate(DEFAULT)
    validate(merged_profile(ROOT / "config.yaml", ROOT / "configs/test.yaml"))
    check(DEFAULT, cuda=False)


def test_profiles_merge_as_snakemake_merges_configfiles(tmp_path):
    (tmp_path / "a.yaml").write_text("data:\n  max_length: 64\n  splits: [train]\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("data:\n  splits: [validation]\nextra: {x: 1}\n")
    (tmp_path / "empty.yaml").write_text("")
    base = {"data": {"max_length": 512, "source": "synthetic", "splits": ["train", "test"]}, "seed": 42}
    before = copy.deepcopy(base)
    merged = merged_profile(base, tmp_path / "a.yaml", str(tmp_path / "b.yaml"), tmp_path / "empty.yaml")
    # nested mappings merge key by key; lists and scalars are replaced whole; later files win
    assert merged == {"data": {"max_length": 64, "source": "synthetic", "splits": ["validation"]}, "seed": 1,
                      "extra": {"x": 1}}
    assert base == before  # no source is modified
    merged["data"]["splits"].append("x")
    assert merged_profile(tmp_path / "b.yaml")["data"]["splits"] == ["validation"]
    # the shipped profiles: the same result as Snakemake's update_config applied by hand
    from snakemake.utils import update_config
    for name in ("configs/test.yaml", "configs/paper.yaml"):
        by_hand = copy.deepcopy(DEFAULT)
        update_config(by_hand, yaml.safe_load((ROOT / name).read_text()))
        assert merged_profile(ROOT / "config.yaml", ROOT / name) == by_hand, name


def test_every_default_key_has_a_comment():
    for line in (ROOT / "config.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.startswith("-"):
            key, _, value = stripped.partition(":")
            if value.strip():  # a leaf key (section headers carry their comment too, checked by eye)
                assert "#" in value, f"config.yaml key {key!r} has no comment"


@pytest.mark.parametrize("override, message", [
    ({"training": {"qlora": {"lerning_rate": 1e-4}}}, "'lerning_rate' was unexpected"),
    ({"data": {"source": "web"}}, "'web' is not one of ['bundled', 'synthetic', 'hf', 'local']"),
    ({"training": {"qlora": {"learning_rate": -1.0}}}, "-1.0 is less than or equal to the minimum of 0"),
    ({"training": {"max_steps": "many"}}, "'many' is not of type 'integer'"),
    ({"model": {"architecture": {"model_type": "gpt2"}}}, "'gpt2' is not one of ['llama', 'qwen2', 'mistral', 'phi3', 'gemma']"),
    ({"training": {"qlora": {"lora": {"target_modules": "all"}}}}, "'all' is not valid under any of the given schemas"),
])
def test_schema_names_key_and_allowed_values(override, message):
    with pytest.raises(jsonschema.ValidationError) as err:
        validate(merged(override))
    assert message in str(err.value)


@pytest.mark.parametrize("family, key, value, allowed", [
    ("llama", "sliding_window", 32, False), ("mistral", "sliding_window", 32, True), ("qwen2", "sliding_window", 32, True),
    ("qwen2", "head_dim", 32, False), ("mistral", "head_dim", 32, True), ("gemma", "head_dim", 32, True),
    ("phi3", "head_dim", 32, False), ("llama", "attention_bias", True, True), ("mistral", "attention_bias", True, False),
    ("phi3", "original_max_position_embeddings", 128, True), ("llama", "original_max_position_embeddings", 128, False),
])
def test_schema_takes_the_keys_of_the_family_its_config_class_takes(family, key, value, allowed):
    """The schema's per-family keys against transformers itself: the family's config class signature."""
    import inspect

    from transformers import CONFIG_MAPPING
    assert (key in inspect.signature(CONFIG_MAPPING[family].__init__).parameters) == allowed
    config = merged({"model": {"architecture": {"model_type": family, key: value}}})
    if allowed:
        validate(config)
    else:
        with pytest.raises(jsonschema.ValidationError) as err:
            validate(config)
        assert list(err.value.absolute_path) == ["model", "architecture", key]


def test_lora_targets_take_all_linear_and_names():
    validate(merged({"training": {"qlora": {"lora": {"target_modules": "all-linear"}}}}))
    validate(merged({"training": {"qlora": {"lora": {"target_modules": ["qkv_proj", "gate_up_proj"]}}}}))


@pytest.mark.parametrize("override, message", [
    ({"model": {"architecture": None}}, "model.architecture is null, but model.source=pretrain"),
    ({"model": {"architecture": {"num_attention_heads": 3}}}, "num_attention_heads=3 must divide hidden_size=128"),
    ({"data": {"max_length": 512}}, "data.max_length=512 exceeds the model's maximum positions"),
    ({"training": {"precision": "fp16"}}, "training.precision=fp16 needs a CUDA device"),
    ({"data": {"source": "local", "local_dir": "/nonexistent/data"}}, "data.local_dir='/nonexistent/data' does not exist"),
    ({"allow_cpu": False}, "allow_cpu=false"),
])
def test_cross_field_checks(override, message):
    config = merged(override)
    validate(config)
    assert any(message in p for p in problems(config, cuda=False)), problems(config, cuda=False)
    with pytest.raises(ConfigError, match="Invalid configuration"):
        check(config, cuda=False)


def test_config_checks_do_not_import_torch():
    code = ("import sys; import qrepro.config_checks; "
            "qrepro.config_checks.merged_profile('config.yaml', 'configs/paper.yaml'); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
