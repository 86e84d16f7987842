"""Sweeps (`snakemake sweep`, configs/sweeps/*.yaml): the grid's points, what a grid may not ask, and a 2-point sweep
per variant on the test profile whose choice and comparisons are recomputed here from the point files."""
import csv
import json
import math
import shutil

import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

from qrepro import sweep
from qrepro.config_checks import merged_profile

VARIANTS = ["full", "qlora"]
DEFAULT = merged_profile(ROOT / "config.yaml")
TEST_GRID = ROOT / "tests/fixtures/sweeps/learning_rate_2points.yaml"


def load(path, config=DEFAULT):
    return sweep.load(path, config, VARIANTS, ROOT / sweep.SCHEMA, ROOT / "schemas/config.schema.yaml")


def grid_file(tmp_path, grid, variants=VARIANTS):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"description": "a test grid", "variants": variants, "grid": grid}))
    return path


def test_a_per_variant_grid_trains_each_variant_at_each_value_not_the_product():
    """The shipped grid: 2 variants x 5 learning rates = 10 points (not 25), each changing only its own variant's rate."""
    lrs = [2.0e-5, 6.0e-5, 2.0e-4, 6.0e-4, 2.0e-3]
    s = load(ROOT / "configs/sweeps/learning_rate.yaml")
    assert len(s.point_names()) == 10
    wanted = {(f"training.{v}.learning_rate", lr) for v in VARIANTS for lr in lrs}
    assert {(key, value) for name in s.point_names() for key, value in s.overrides(name).items()} == wanted
    for name in s.point_names():
        variant = s.point(name)["variant"]
        hp, shared = sweep.point_training(DEFAULT["training"], s.overrides(name), variant, VARIANTS)
        assert hp["learning_rate"] == s.point(name)["learning_rate"]
        assert {k: v for k, v in hp.items() if k != "learning_rate"} == \
            {k: v for k, v in DEFAULT["training"][variant].items() if k != "learning_rate"}
        assert shared == {k: v for k, v in DEFAULT["training"].items() if k not in (*VARIANTS, "seeds")}
    # the paper's recipe is on the grid: the points with the profile's own rates
    assert s.point(s.recipe_point(DEFAULT, "full"))["learning_rate"] == DEFAULT["training"]["full"]["learning_rate"]
    assert s.point(s.recipe_point(DEFAULT, "qlora"))["learning_rate"] == DEFAULT["training"]["qlora"]["learning_rate"]


def test_point_folders_are_the_paramspace_pattern():
    s = load(ROOT / "configs/sweeps/learning_rate.yaml")
    assert s.paramspace().wildcard_pattern == "{point}"
    assert s.point_names("qlora") == ["variant~qlora/learning_rate~2e-05", "variant~qlora/learning_rate~6e-05",
                                      "variant~qlora/learning_rate~0.0002", "variant~qlora/learning_rate~0.0006",
                                      "variant~qlora/learning_rate~0.002"]


def test_a_key_outside_training_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(sweep.SweepError) as err:
        load(grid_file(tmp_path, {"data.max_length": [32, 64]}))
    assert "'data.max_length' is not supported by a sweep" in str(err.value)
    assert "--configfile" in str(err.value)


@pytest.mark.parametrize("grid, message", [
    ({"training.qlora.lora.r": [8, 16]}, "names variant qlora"),
    ({"training.seeds": [1, 2]}, "cannot be swept"),
    ({"training.{variant}.learning_rte": [1e-4]}, "the profile has no key training.full.learning_rte"),
])
def test_grids_a_sweep_cannot_run_fail_at_parse_time(tmp_path, grid, message):
    with pytest.raises(Exception) as err:
        load(grid_file(tmp_path, grid))
    assert message in str(err.value)


def test_a_grid_without_the_profiles_recipe_fails_when_the_sweep_runs_not_when_any_target_parses(tmp_path):
    s = load(grid_file(tmp_path, {"training.{variant}.learning_rate": [1e-4, 1e-3]}))
    with pytest.raises(sweep.SweepError, match="no point of variant full has the profile's own values"):
        s.recipe_point(DEFAULT, "full")


def test_a_grid_must_sweep_both_variants(tmp_path):
    with pytest.raises(sweep.SweepError, match="a sweep trains every variant"):
        load(grid_file(tmp_path, {"training.{variant}.learning_rate": [2e-5, 2e-4]}, variants=["qlora"]))


def test_the_choice_is_the_lowest_validation_perplexity_and_says_when_it_is_at_an_edge():
    s = load(ROOT / "configs/sweeps/learning_rate.yaml")
    full = s.point_names("full")
    validation = dict.fromkeys(s.point_names(), 100.0) | {full[0]: 90.0, full[1]: 80.0, full[2]: 85.0}
    middle = sweep.choose(validation, s, "full")
    assert (middle["point"], middle["at_edge"], middle["edges"]) == (full[1], False, [])
    inside = sweep.choose(validation | {full[2]: 70.0}, s, "full")
    assert inside["point"] == full[2] and not inside["at_edge"]
    edge = sweep.choose(validation | {full[-1]: 60.0}, s, "full")
    assert edge["point"] == full[-1] and edge["at_edge"]
    assert edge["edges"] == [{"column": "learning_rate", "key": "training.full.learning_rate", "side": "highest",
                              "value": 2e-3}]


def job_counts(dry_run: str) -> dict[str, int]:
    """{rule: jobs} from the first "Job stats" table of a dry run."""
    table = dry_run.split("Job stats:")[1].split("\n\n")[0]
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if len(line.split()) == 2}


def test_the_default_report_neither_needs_nor_runs_a_sweep_and_sweep_plans_one_job_per_point(tmp_path):
    clean = copy_workflow(tmp_path / "clean")
    assert not [rule for rule in job_counts(snakemake(clean, "-n", "report").stdout) if rule.startswith("sweep")]
    counts = job_counts(snakemake(clean, "-n", "sweep").stdout)
    assert counts["sweep_finetune"] == 5 and counts["sweep_finetune_qlora"] == 5
    assert counts["sweep_perplexity"] == 20  # each point on the validation and the test split


# ---- a 2-point sweep per variant on the test profile (slow: 4 trainings and 8 perplexities, then the report) ----

@pytest.fixture(scope="module")
def swept(test_run, tmp_path_factory):
    """The finished test-profile run, copied, with the test grid as its only sweep: `sweep`, then `report`."""
    workdir = tmp_path_factory.mktemp("swept") / "run"
    shutil.copytree(test_run, workdir, symlinks=True)
    for grid in (workdir / "configs/sweeps").glob("*.yaml"):
        grid.unlink()
    shutil.copy(TEST_GRID, workdir / "configs/sweeps")
    before = (workdir / "report/report.html").read_text()
    snakemake(workdir, "--configfile", "configs/test.yaml", "--cores", "2", "sweep")
    snakemake(workdir, "--configfile", "configs/test.yaml", "--cores", "2", "report")
    return workdir, before


def _points(root):
    """{learning rate from the folder name: {variant, validation, test, hyperparameters, log}} read from the files."""
    points = {}
    for folder in sorted((root / "results/sweeps/learning_rate_2points").glob("variant~*/learning_rate~*")):
        variant, lr = folder.parent.name.split("~")[1], float(folder.name.split("~")[1])
        read = lambda split: json.loads((folder / f"metrics/{split}/perplexity_token.json").read_text())  # noqa: E731
        points[(variant, lr)] = {"folder": folder, "validation": read("validation"), "test": read("test"),
                                 "hp": json.loads((folder / f"train/{variant}/hyperparameters.json").read_text()),
                                 "log": list(csv.DictReader(open(folder / f"train/{variant}/log_history.csv")))}
    return points


def _summary(root, name):
    return json.loads((root / f"results/sweeps/learning_rate_2points/metrics/sweep/{name}.json").read_text())


@pytest.mark.slow
def test_each_point_trained_at_its_own_learning_rate(swept):
    points = _points(swept[0])
    assert sorted(points) == [(v, lr) for v in VARIANTS for lr in (2e-5, 2e-4)]
    for (variant, lr), point in points.items():
        assert point["hp"]["learning_rate"] == lr and point["hp"]["variant"] == variant
    for variant in VARIANTS:  # the same schedule scaled: every logged rate in the ratio of the two peaks
        low, high = ([float(r["learning_rate"]) for r in points[(variant, lr)]["log"] if r["learning_rate"]]
                     for lr in (2e-5, 2e-4))
        assert low and len(low) == len(high) and max(high) <= 2e-4 * (1 + 1e-9)
        assert all(math.isclose(h / lo, 10, rel_tol=1e-6) for lo, h in zip(low, high))


@pytest.mark.slow
def test_the_chosen_point_is_the_argmin_of_validation_perplexity(swept):
    points = _points(swept[0])
    for variant in VARIANTS:
        best_lr = min((lr for v, lr in points if v == variant), key=lambda lr: points[(variant, lr)]["validation"]["value"])
        record = _summary(swept[0], f"best_point_{variant}")
        assert record["value"] == points[(variant, best_lr)]["folder"].relative_to(
            swept[0] / "results/sweeps/learning_rate_2points").as_posix()
        assert record["details"]["at_edge"] is True  # two values: either one is an edge
        assert record["details"]["edges"][0]["key"] == f"training.{variant}.learning_rate"
        assert all("/validation/" in path for path in record["inputs"])  # the test split is never read for the choice


@pytest.mark.slow
def test_the_comparisons_are_the_change_of_the_two_test_perplexities(swept):
    root = swept[0]
    points = _points(root)
    best = {v: _summary(root, f"best_point_{v}")["value"] for v in VARIANTS}
    by_folder = {p["folder"].relative_to(root / "results/sweeps/learning_rate_2points").as_posix(): p
                 for p in points.values()}
    recipe = {v: points[(v, DEFAULT["training"][v]["learning_rate"])] for v in VARIANTS}
    for role, (full, qlora) in (("tuned", (by_folder[best["full"]], by_folder[best["qlora"]])),
                                ("recipe", (recipe["full"], recipe["qlora"]))):
        record = _summary(root, f"perplexity_change_percent_token_{role}")
        assert math.isclose(record["value"], 100 * (qlora["test"]["value"] / full["test"]["value"] - 1), rel_tol=1e-12)
        assert record["interval"]["low"] <= record["value"] <= record["interval"]["high"]
        assert sum(path.endswith("eval/test/perplexity_audit.json") for path in record["inputs"]) == 2


@pytest.mark.slow
def test_the_report_shows_the_sweep_only_once_it_has_run(swept):
    root, before = swept
    after = (root / "report/report.html").read_text()
    title = "does the perplexity gap survive tuning?"
    assert title not in before and title in after
    assert 'href="../results/sweeps/learning_rate_2points/metrics/sweep/perplexity_change_percent_token_tuned.json"' \
        in after
    assert 'href="../results/sweeps/learning_rate_2points/variant~full/learning_rate~2e-05/metrics/validation/' \
           'perplexity_token.json"' in after
    assert "sits at an edge of its grid" in after
    assert (root / "report/report.pdf").stat().st_mtime > (root / "results/sweeps/learning_rate_2points/report/"
                                                                   "figure.pdf").stat().st_mtime
