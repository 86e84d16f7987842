"""A bad configuration is refused before any job runs, with a message that names the key."""

import pytest

from conftest import copy_workflow, snakemake


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("bad"))


BAD_CONFIGS = [
    ("training:\n  qlora:\n    learning_rate: -0.001\n", "-0.001 is less than or equal to the minimum of 0"),
    ("training:\n  max_steps: 0\n", "0 is less than the minimum of 1"),
    ("training:\n  full:\n    batch_size: 0\n", "0 is less than the minimum of 1"),
    ("data:\n  source: web\n", "'web' is not one of ['bundled', 'synthetic', 'hf', 'local']"),
    ("model:\n  source: ftp\n", "'ftp' is not one of ['pretrain', 'hub', 'local']"),
    ("training:\n  qlora:\n    quantization:\n      quant_type: int3\n", "'int3' is not one of ['nf4', 'fp4']"),
    ("training:\n  qlora:\n    optim: adam_magic\n", "'adam_magic' is not one of"),
    ("training:\n  qlora:\n    lora:\n      r: 0\n", "0 is less than the minimum of 1"),
    # names are the model's to check (tests/test_families.py); the schema takes a list of names or all-linear
    ("training:\n  qlora:\n    lora:\n      target_modules: all_linear\n", "'all_linear' is not valid under any of"),
    ("data:\n  max_length: 4096\n", "data.max_length=4096 exceeds the model's maximum positions"),
    ("model:\n  architecture:\n    num_attention_heads: 3\n", "num_attention_heads=3 must divide hidden_size=64"),
    ("data:\n  source: local\n  local_dir: /no/such/dir\n", "data.local_dir='/no/such/dir' does not exist"),
    ("training:\n  max_steps: lots\n", "'lots' is not of type 'integer'"),
    ("training:\n  max_stepz: 10\n", "'max_stepz' was unexpected"),
    ("training:\n  precision: fp16\n", "training.precision=fp16 needs a CUDA device"),
]


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
@pytest.mark.parametrize("override, message", BAD_CONFIGS, ids=[m[:40] for _, m in BAD_CONFIGS])
def test_bad_configuration_is_refused_before_any_job(clean_copy, override, message):
    (clean_copy / "bad.yaml").write_text(override)
    result = snakemake(clean_copy, "--configfile", "configs/test.yaml", "bad.yaml", "--cores", "1", "train", check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (clean_copy / "results").exists(), "nothing may be written before the configuration is accepted"


def test_unknown_variant_has_no_rule(clean_copy):
    result = snakemake(clean_copy, "--configfile", "configs/test.yaml", "-n", "results/metrics/lora/train_time_s.json",
                       check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stderr + result.stdout
