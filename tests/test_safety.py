"""Nothing unsafe runs: weights only from safetensors, no remote code, no shell escape, no shell calls."""
import json

import pytest
import torch

from conftest import ROOT


def test_a_pickled_checkpoint_is_refused(tmp_path):
    """Weights only from safetensors: a model folder holding only pytorch_model.bin (a pickle) does not load."""
    from qrepro.model.causal_lm import load_pretrained
    from tiny_models import tiny_model

    model = tiny_model("llama", vocab=64, seed=0)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # the pickled format safetensors replaces
    assert (tmp_path / "pytorch_model.bin").exists() and not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(OSError, match="safetensors"):
        load_pretrained(str(tmp_path))


def test_remote_code_in_a_model_folder_never_runs(tmp_path):
    """A config that asks for its own modelling code (auto_map) is refused, and that code is never imported."""
    from qrepro.model.causal_lm import load_pretrained

    marker = tmp_path / "ran"
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "evil", "architectures": ["EvilForCausalLM"],
                                                      "auto_map": {"AutoConfig": "modeling_evil.EvilConfig",
                                                                   "AutoModelForCausalLM": "modeling_evil.Evil"}}))
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_pretrained(str(tmp_path))
    assert not marker.exists()


def test_the_pdf_is_built_without_shell_escape(tmp_path):
    """A report whose text tried to run a command (\\write18) compiles, and the command does not run."""
    import shutil
    import subprocess

    from qrepro.report.pdf import latexmk_command

    if shutil.which("latexmk") is None:
        pytest.skip("latexmk is not installed (bash install.sh installs TeX Live)")
    marker = tmp_path / "pwned"
    tex = tmp_path / "report.tex"
    tex.write_text(rf"\documentclass{{article}}\begin{{document}}\immediate\write18{{touch {marker}}}x\end{{document}}")
    subprocess.run(latexmk_command(tex), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (tmp_path / "report.pdf").exists() and not marker.exists()


def test_no_shell_calls_and_no_unsafe_torch_load_in_the_code():
    """From the syntax tree of every script: no subprocess call with shell=True, every torch.load with
    weights_only=True, no trust_remote_code=True."""
    import ast

    wrong = []
    for path in (ROOT / "scripts").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            constant = {k: getattr(v, "value", None) for k, v in keywords.items()}
            if constant.get("shell") is True or constant.get("trust_remote_code") is True:
                wrong.append(f"{path}:{node.lineno}")
            name = ast.unparse(node.func)
            if name == "torch.load" and constant.get("weights_only") is not True:
                wrong.append(f"{path}:{node.lineno} torch.load without weights_only=True")
    assert not wrong, wrong
