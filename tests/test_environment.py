import re

import yaml

from conftest import ROOT


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s]+)", line).groups()
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_requirements_are_the_one_home_of_the_pins():
    """requirements.txt pins every package; environment.yml and pyproject.toml take them from it, and both install
    this project's library (qrepro) from the checkout."""
    import tomllib

    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-r requirements.txt", "-e ."]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["name"] == "qrepro" and project["project"]["dynamic"] == ["dependencies"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert "-e ." in (ROOT / "install.sh").read_text()
    for needed in ["torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "tokenizers",
                   "snakemake", "jinja2", "matplotlib", "pandas", "pytest"]:
        assert needed in requirements
    # the environment that runs is the one the pins describe
    from importlib.metadata import version
    for package in ("torch", "transformers", "peft", "bitsandbytes", "snakemake"):
        assert version(package).split("+")[0] == requirements[package], package
    assert tuple(int(x) for x in requirements["bitsandbytes"].split(".")[:2]) >= (0, 50)


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, re.S)
    assert len(blocks) == 2 and blocks[1].strip() == ci
