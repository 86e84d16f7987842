"""The fine-tuning job's parameters as plain data (in the manner of transformers' run_clm.py argument dataclasses).

scripts/finetune.py builds a FinetuneJob from the Snakemake job (only the fields the job uses); with
training.num_processes > 1 it is written as JSON and every process that `accelerate launch` starts reads it back
(`python -m qrepro.training.job <job.json>`). No Snakemake object, no pickle crosses the process boundary.
No torch import here.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path


class JobSpecError(ValueError):
    pass


@dataclass(frozen=True)
class JobInputs:
    base_model: str = field(metadata={"help": "Folder of the base model (rule base_model)."})
    tokenizer: str = field(metadata={"help": "Folder of the tokenizer (rule tokenizer)."})
    tokenized: str = field(metadata={"help": "The tokenized splits, a datasets folder (rule tokenize)."})


@dataclass(frozen=True)
class JobOutputs:
    weights: str = field(metadata={"help": "model.safetensors (full) or adapter_model.safetensors (qlora); the "
                                           "model is saved into its folder."})
    log_history: str = field(metadata={"help": "CSV of the Trainer's log history."})
    hyperparameters: str = field(metadata={"help": "JSON of the resolved hyperparameters."})


@dataclass(frozen=True)
class JobParams:
    hp: dict = field(metadata={"help": "config training.<variant>: the variant's hyperparameters."})
    shared: dict = field(metadata={"help": "config training without the variants: settings both variants share."})
    seed: int = field(metadata={"help": "config seed."})
    timing: dict = field(metadata={"help": "config timing: the outside-load threshold, the step-outlier multiple and "
                                           "the reruns."})
    bootstrap: dict = field(metadata={"help": "config evaluation.bootstrap: the median step time's interval."})
    max_length: int = field(metadata={"help": "config data.max_length (sequence length of the memory estimate)."})
    metrics: dict = field(metadata={"help": "The rule's `metrics` param (catalogue.declared): each metric file the job "
                                            "writes, with its catalogue entry; write_metrics checks the job against it."})
    checkpoint_dir: str = field(metadata={"help": "Trainer output folder: checkpoints, resumed only by this job."})


@dataclass(frozen=True)
class FinetuneJob:
    variant: str = field(metadata={"help": "full | qlora (the rule's wildcard)."})
    threads: int = field(metadata={"help": "Threads the job was given (Snakemake threads)."})
    scheduler_cores: int = field(metadata={"help": "resources.scheduler_cores: the evidence that the job ran alone "
                                                   "(runlog.alone_evidence)."})
    log: str = field(metadata={"help": "The job's log file; worker processes log to <log>.rank<RANK>."})
    input: JobInputs
    output: JobOutputs
    params: JobParams

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> FinetuneJob:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise JobSpecError(f"{path} is not a fine-tuning job spec (invalid JSON: {err})") from err
        return from_dict(cls, data, str(path))


def from_dict(cls, data, where: str):
    """cls built from data, field by field; an unknown, missing or mistyped field is an error that names it."""
    if not isinstance(data, dict):
        raise JobSpecError(f"{where}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    missing = [n for n in names if n not in data]
    if unknown or missing:
        raise JobSpecError(f"{where}: {cls.__name__} " + "; ".join(
            part for part in (f"unknown field(s) {', '.join(unknown)}" if unknown else "",
                              f"missing field(s) {', '.join(missing)}" if missing else "") if part)
            + f" (expected exactly: {', '.join(names)})")
    values = {}
    for name in names:
        kind, value = hints[name], data[name]
        if dataclasses.is_dataclass(kind):
            value = from_dict(kind, value, f"{where}: {cls.__name__}.{name}")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise JobSpecError(f"{where}: {cls.__name__}.{name} must be {kind.__name__}, got {value!r}")
        values[name] = value
    return cls(**values)
