"""Sweeps (`snakemake sweep`): grid files configs/sweeps/<name>.yaml, their points and the choice among them.

A grid file names config keys under `training.` and the values each takes. A key written with `{variant}`
(training.{variant}.learning_rate) is per variant: each of the file's `variants` gets the same values, and a point
trains one variant, so two variants and three learning rates are 6 trainings, not 9. The points are the product of
the keys' values, once per variant, as a pandas DataFrame wrapped in Snakemake's Paramspace (one wildcard, `point`,
e.g. variant~full/learning_rate~2e-05: the point's folder under results/sweeps/<name>/). Every point shares the
profile's data, tokenizer and base model; a key outside `training.` would need its own data or base model, so it
is refused (run the workflow again with that key in a --configfile instead).

Shared layer, read at parse time: no torch.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

WORKFLOW_FILES = ("schemas/sweep.schema.yaml",)  # read at parse time
SCHEMA = WORKFLOW_FILES[0]
VARIANT = "{variant}"
NOT_SWEPT = ("training.seeds", "training.num_processes")  # a point is one training of one seed in one process


class SweepError(ValueError):
    """A grid file asks for something a sweep cannot do; the message says what to do instead."""


@dataclass(frozen=True)
class Sweep:
    name: str                          # the grid file's stem: results/sweeps/<name>/
    source: str                        # the grid file
    description: str
    variants: tuple[str, ...]
    keys: dict[str, str]               # column -> config key, "{variant}" where per variant
    values: dict[str, list]            # column -> the grid's values, in the file's order
    points: list[dict] = field(repr=False)  # each point: {"variant": ..., column: value, ...}

    @property
    def columns(self) -> list[str]:
        return list(self.keys)

    def paramspace(self):
        """Snakemake's Paramspace over the points, one wildcard `point` (variant~<v>/<column>~<value>/...)."""
        import pandas as pd
        from snakemake.utils import Paramspace

        frame = pd.DataFrame(self.points, columns=["variant", *self.columns])
        return Paramspace(frame, single_wildcard="point")

    def point_names(self, variant: str | None = None) -> list[str]:
        names = list(self.paramspace().instance_patterns)
        return [n for n, p in zip(names, self.points) if variant is None or p["variant"] == variant]

    def point(self, name: str) -> dict:
        """The point a folder name stands for, its values as plain Python (JSON-serializable in params)."""
        for candidate, point in zip(self.point_names(), self.points):
            if candidate == name:
                return point
        raise SweepError(f"{name} is not a point of sweep {self.name} ({self.source})")

    def overrides(self, name: str) -> dict[str, object]:
        """{config key: value} the point sets, the variant filled in (training.full.learning_rate: 2e-05)."""
        point = self.point(name)
        return {key.replace(VARIANT, point["variant"]): point[column] for column, key in self.keys.items()}

    def recipe_point(self, config: dict, variant: str) -> str:
        """The variant's point whose values are the profile's own (the recipe the main run trains)."""
        for name in self.point_names(variant):
            if all(_close(get_key(config, key), value) for key, value in self.overrides(name).items()):
                return name
        raise SweepError(f"{self.source}: no point of variant {variant} has the profile's own values "
                         f"({ {k.replace(VARIANT, variant): get_key(config, k.replace(VARIANT, variant)) for k in self.keys.values()} }); "
                         "add them to the grid: the sweep compares the profile's recipe with each variant's best")


def _close(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def get_key(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def set_key(config: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


def column_name(key: str) -> str:
    """training.{variant}.qlora... -> the wildcard-safe column: the key below training., variant and dots dropped."""
    return key.removeprefix("training.").replace(VARIANT + ".", "").replace(".", "_")


def check_key(key: str, variants: list[str], config: dict, source: str) -> None:
    if not key.startswith("training."):
        raise SweepError(
            f"{source}: grid key {key!r} is not supported by a sweep. The points of a sweep share the profile's data, "
            "tokenizer and base model and differ only in training settings (keys under training.). To change "
            f"{key}, run the workflow again with it set in a config file: snakemake --configfile <that file.yaml>.")
    if key in NOT_SWEPT:
        raise SweepError(f"{source}: grid key {key!r} cannot be swept (each point is one training of one seed in one "
                         "process); set it in a --configfile instead")
    named = [v for v in config["training"] if isinstance(config["training"][v], dict) and key.startswith(f"training.{v}.")]
    if named:
        raise SweepError(f"{source}: grid key {key!r} names variant {named[0]}: write training.{{variant}}."
                         f"{key.removeprefix(f'training.{named[0]}.')}, which gives every variant the same values")
    for variant in variants if VARIANT in key else [None]:
        concrete = key.replace(VARIANT, variant) if variant else key
        try:
            current = get_key(config, concrete)
        except (KeyError, TypeError):
            raise SweepError(f"{source}: grid key {key!r}: the profile has no key {concrete}") from None
        if isinstance(current, dict):
            raise SweepError(f"{source}: grid key {key!r} is a section, not a setting: name a key inside it")


def load(path: str | Path, config: dict, variants_known: list[str], schema: str | Path = SCHEMA,
         config_schema: str | Path = "schemas/config.schema.yaml") -> Sweep:
    """Read and check one grid file against the profile (config): the schema, every key, and each point's whole
    config (schemas/config.schema.yaml and qrepro.config_checks), so a bad value fails at parse time."""
    from snakemake.utils import validate

    from qrepro import config_checks

    path = Path(path)
    data = yaml.safe_load(path.read_text())
    validate(data, str(schema))
    variants = list(data["variants"])
    if sorted(variants) != sorted(variants_known):
        raise SweepError(f"{path}: variants {variants}: a sweep trains every variant ({variants_known}), since its "
                         "summary compares them at the profile's recipe and at each one's best")
    grid = data["grid"]
    for key in grid:
        check_key(key, variants, config, str(path))
    keys = {column_name(key): key for key in grid}
    if len(keys) != len(grid):
        raise SweepError(f"{path}: two grid keys end in the same setting name: {sorted(grid)}")
    values = {column: list(grid[key]) for column, key in keys.items()}
    points = []
    for variant in variants:
        for combo in _product(list(values.values())):
            points.append({"variant": variant, **dict(zip(keys, combo))})
    sweep = Sweep(path.stem, str(path), data.get("description", path.stem), tuple(variants), keys, values, points)
    for name in sweep.point_names():
        point_config = copy.deepcopy(config)
        for key, value in sweep.overrides(name).items():
            set_key(point_config, key, value)
        validate(point_config, str(config_schema))
        found = config_checks.problems(point_config, check_device=False)
        if found:
            raise SweepError(f"{path}: point {name} is not a valid configuration:\n  - " + "\n  - ".join(found))
    return sweep  # the profile's recipe on the grid is checked only when the sweep runs (rule sweep_summary's params)


def _product(lists: list[list]) -> list[tuple]:
    import itertools

    return list(itertools.product(*lists))


def load_all(folder: str | Path, config: dict, variants_known: list[str]) -> dict[str, Sweep]:
    """Every grid file of a folder (configs/sweeps/*.yaml), by name."""
    return {p.stem: load(p, config, variants_known) for p in sorted(Path(folder).glob("*.yaml"))}


def point_training(config_training: dict, overrides: dict[str, object], variant: str,
                   variants: list[str]) -> tuple[dict, dict]:
    """The (hp, shared) a point's finetune job gets: the profile's training settings with the point's values set."""
    training = {"training": copy.deepcopy(config_training)}
    for key, value in overrides.items():
        set_key(training, key, value)
    training = training["training"]
    return training[variant], {k: v for k, v in training.items() if k not in (*variants, "seeds")}


def choose(validation: dict[str, float], sweep: Sweep, variant: str) -> dict:
    """The variant's best point by validation perplexity (the lowest), and whether it sits at an edge of the grid:
    a column with several values whose chosen value is its lowest or highest."""
    names = sweep.point_names(variant)
    best = min(names, key=lambda name: validation[name])
    point = sweep.point(best)
    edges = []
    for column, grid_values in sweep.values.items():
        if len(grid_values) > 1 and point[column] in (min(grid_values), max(grid_values)):
            side = "lowest" if point[column] == min(grid_values) else "highest"
            edges.append({"column": column, "key": sweep.keys[column].replace(VARIANT, variant), "side": side,
                          "value": point[column]})
    return {"point": best, "values": {c: point[c] for c in sweep.columns}, "at_edge": bool(edges), "edges": edges}
