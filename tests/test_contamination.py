"""Contaminated timings: a timed job redoes its work while the machine's outside load is above the threshold
(qrepro.machine_load.redo_while_loaded), and a timing no attempt of which was clean is marked, with everything computed from
it (qrepro.derived.mark_contaminated) and everywhere the report shows it. Fast: made-up observations and files."""
import jsonschema
import pytest

from qrepro import derived, seeds
from qrepro.machine_load import MachineLoad, PlantedLoad, redo_while_loaded
from qrepro.metrics_io import MetricStore, metric_record
from qrepro.report import claims
from qrepro.report.numbers import CONTAMINATED_MARK, Values
from qrepro.catalogue import CellSpec
from qrepro.report.tables import Sources, Table, cell

M = CONTAMINATED_MARK


def _observation(cores: float, threshold: float = 0.1) -> dict:
    return {"outside_cores_mean": cores, "threshold_cores": threshold, "outside_load_observed": cores > threshold}


def _scripted(loads: list[float]):
    """A job's work whose n-th attempt observes loads[n - 1] cores of outside load; it returns its attempt number."""
    calls = []

    def work(attempt):
        calls.append(attempt)
        return f"result {attempt}", _observation(loads[attempt - 1]), {"seconds": 10.0 * attempt}
    return work, calls


@pytest.mark.parametrize("loads, reruns, kept, contaminated", [
    ([0.0], 2, 1, False),               # clean at once: no rerun
    ([0.8, 0.05], 2, 2, False),         # one loaded attempt, redone once, the clean one kept
    ([0.8, 0.6, 0.02], 2, 3, False),    # clean on the last allowed attempt
    ([0.8, 0.6, 0.5], 2, 3, True),      # never clean: the last kept, contaminated
    ([0.8], 0, 1, True),                # no reruns allowed
])
def test_the_work_is_redone_until_an_attempt_is_clean(loads, reruns, kept, contaminated):
    work, calls = _scripted(loads)
    result, record = redo_while_loaded(work, {"reruns": reruns, "plant_busy_attempts": 0})
    assert calls == list(range(1, kept + 1)) and result == f"result {kept}"
    assert record["contaminated"] is contaminated and record["reruns_allowed"] == reruns
    assert [a["attempt"] for a in record["attempts"]] == calls
    assert [a["outside_cores_mean"] for a in record["attempts"]] == loads[:kept]
    assert [a["outside_load_observed"] for a in record["attempts"]] == [x > 0.1 for x in loads[:kept]]
    assert [a["seconds"] for a in record["attempts"]] == [10.0 * n for n in calls]  # each attempt's own value
    assert not any(a["planted_busy_process"] for a in record["attempts"])


def test_only_the_first_attempts_get_the_planted_process(monkeypatch):
    planted = []
    monkeypatch.setattr(PlantedLoad, "__enter__", lambda self: planted.append(self.on) or self)
    monkeypatch.setattr(PlantedLoad, "__exit__", lambda self, *exc: None)
    work, _ = _scripted([0.8, 0.8, 0.0])
    _, record = redo_while_loaded(work, {"reruns": 2, "plant_busy_attempts": 2})
    assert planted == [True, True, False]
    assert [a["planted_busy_process"] for a in record["attempts"]] == [True, True, False]
    _, record = redo_while_loaded(_scripted([0.8])[0], {"reruns": 0, "plant_busy_attempts": 1}, plant=False)
    assert planted[-1] is False  # another rank than 0 plants nothing


@pytest.mark.slow
def test_a_planted_busy_process_is_observed_as_outside_load():
    """One second of this process spinning beside the planted process: the machine's CPU time outside this process
    is about the planted one's (up to a core; less where the two share fewer cores than they need)."""
    import time
    with PlantedLoad(True) as planted, MachineLoad() as load:
        end = time.process_time() + 1.0
        while time.process_time() < end:
            pass
    assert planted._process.poll() is not None  # killed when the block ended
    report = load.report(threshold_cores=0.1)
    assert report["outside_load_observed"] and report["outside_cores_mean"] > 0.3


def test_a_contaminated_flag_is_written_only_when_true_and_only_as_true():
    clean = metric_record("step_time_s", "qlora", 1.0, "s", "a method text", [], timing=True)
    marked = metric_record("step_time_s", "qlora", 1.0, "s", "a method text", [], timing=True, contaminated=True)
    assert "contaminated" not in clean and marked["contaminated"] is True
    from qrepro.metrics_io import _schema
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**clean, "contaminated": False}, _schema())


def _file(scope, metric, value, unit="s", contaminated=False, **extra):
    record = {"metric": metric, "scope": scope, "value": value, "unit": unit, "method": "made up for a test",
              "inputs": [], "timing": True, **extra}
    if contaminated:
        record["contaminated"] = True
    return record


def _store(*records) -> MetricStore:
    m = MetricStore()
    for r in records:
        key = (r["scope"], r["metric"])
        m.records[key], m.paths[key] = r, f"results/metrics/{r['scope']}/{r['metric']}.json"
    return m


def test_a_comparison_or_radar_point_is_contaminated_when_an_input_is():
    m = _store(_file("full", "train_time_s", 100.0), _file("qlora", "train_time_s", 150.0, contaminated=True),
               _file("full", "step_time_s", 2.0), _file("qlora", "step_time_s", 2.5))
    comparisons = [derived.Comparison("slow_total", "change", ("qlora", "train_time_s"), ("full", "train_time_s"), "x"),
                   derived.Comparison("slow_step", "change", ("qlora", "step_time_s"), ("full", "step_time_s"), "x")]
    points = [derived.RadarPoint("radar_paper_qlora_training_speed", "paper", "qlora", "training_speed",
                                 ("full", "train_time_s"), ("qlora", "train_time_s"), "s_over_max"),
              derived.RadarPoint("radar_consistent_qlora_training_speed", "consistent", "qlora", "training_speed",
                                 ("full", "step_time_s"), ("qlora", "step_time_s"), "lower")]
    out = derived.comparison_records(m, comparisons, points)
    assert out["slow_total"]["value"] == pytest.approx(50.0)  # 100 x (150 / 100 - 1), marked or not
    assert out["slow_total"]["contaminated"] is True
    assert out["slow_total"]["details"]["contaminated_inputs"] == ["results/metrics/qlora/train_time_s.json"]
    assert out["radar_paper_qlora_training_speed"]["contaminated"] is True
    assert "contaminated" not in out["slow_step"] and "contaminated" not in out["radar_consistent_qlora_training_speed"]
    assert "contaminated_inputs" not in out["slow_step"]["details"]


def test_a_value_derived_from_a_derived_value_stays_contaminated():
    """Propagation is transitive: a record that read a contaminated comparison is contaminated too."""
    read = {"results/metrics/comparison/slow_total.json": {"contaminated": True},
            "results/metrics/device/peak_flops.json": {}}
    records = {"mfu": {"value": 1.0, "inputs": ["results/metrics/device/peak_flops.json",
                                                "results/metrics/comparison/slow_total.json"]},
               "other": {"value": 2.0, "inputs": ["results/metrics/device/peak_flops.json"]}}
    derived.mark_contaminated(records, read)
    assert records["mfu"]["contaminated"] and \
        records["mfu"]["details"]["contaminated_inputs"] == ["results/metrics/comparison/slow_total.json"]
    assert "contaminated" not in records["other"]


def test_a_mean_over_seeds_is_contaminated_when_one_seed_run_is():
    runs = [_file("qlora", "train_time_s", v, contaminated=c) for v, c in ((10.0, False), (14.0, True), (12.0, False))]
    paths = [f"results/seeds/{s}/metrics/qlora/train_time_s.json" for s in (42, 43, 44)]
    aggregate = seeds.seed_aggregate(runs, [42, 43, 44], paths, 0.95)
    assert aggregate["value"] == pytest.approx(12.0) and aggregate["contaminated"] is True
    assert aggregate["details"]["contaminated_seeds"] == [43]
    assert metric_record(**aggregate)["contaminated"] is True
    clean = seeds.seed_aggregate([runs[0], runs[2]], [42, 44], [paths[0], paths[2]], 0.95)
    assert clean["contaminated"] is False and "contaminated" not in metric_record(**clean)


def test_the_report_marks_every_number_read_from_a_contaminated_file():
    m = _store(_file("qlora", "train_time_s", 205.1, contaminated=True), _file("full", "train_time_s", 53.0),
               _file("comparison", "training_slowdown_percent_total", 286.9, unit="%", contaminated=True))
    v = Values(m)
    assert v.f("qlora/train_time_s", "f1") == f"205.1{M}" and v.f("full/train_time_s", "f1") == "53.0"
    assert v.size("comparison/training_slowdown_percent_total", "f1") == f"286.9{M}"
    assert v.contaminated_files() == ["results/metrics/comparison/training_slowdown_percent_total.json",
                                      "results/metrics/qlora/train_time_s.json"]
    # a table cell and its ratio to the paper's value (205.1 / 100 = 2.05)
    paper = {"t9_qlora": {"id": "t9_qlora", "value": 100.0, "unit": "s", "table": 9, "row": "r", "column": "c"}}
    marked = cell(CellSpec.parse("qlora/train_time_s|f1|t9_qlora"), Sources(m))
    clean = cell(CellSpec.parse("full/train_time_s|f1"), Sources(m))
    assert marked.contaminated and not clean.contaminated
    frame = Table(9, "caption", ["Total"], [("QLoRA", {"Total": marked}), ("Standard", {"Total": clean})]) \
        .display_frame(paper)
    assert list(frame[("Total", "Reproduced")]) == [f"205.1{M}", "53.0"]
    assert list(frame[("Total", "Ratio")]) == [f"2.05×{M}", "—"]


def test_a_claim_judged_on_a_contaminated_comparison_carries_the_mark():
    m = _store(_file("comparison", "training_slowdown_percent_total", 286.9, unit="%", contaminated=True),
               _file("comparison", "training_slowdown_percent_per_step", 20.0, unit="%"))
    run = claims.Run("this run", m, cuda=False, gpu=None, paper_architecture=True, paper_recipe=True,
                     pretrained_paper_model=False, paper_data=False)
    run.facts = lambda: {}
    claim = {"id": "slower", "judged_on": "architecture", "value": "training_slowdown_percent_total",
             "published": 100.0, "published_text": "100.0", "rel_tolerance": 0.1, "evidence": "",
             "direction": {"sign": "positive", "comparisons": {"training_slowdown_percent_total": "total",
                                                               "training_slowdown_percent_per_step": "per step"}}}
    judged = claims.judge(claim, run, None)
    assert judged["contaminated"] is True
    assert [d["contaminated"] for d in judged["direction"]] == [True, False]


# ---- the whole pipeline, with a busy process planted beside the timed jobs (timing.plant_busy_attempts) ----------

def _overlay(workdir, name: str, reruns: int) -> str:
    (workdir / name).write_text(f"timing:\n  reruns: {reruns}\n  plant_busy_attempts: 1\n")
    return name


@pytest.fixture(scope="module")
def planted_run(test_run, tmp_path_factory):
    """A copy of the finished test-profile run (mtimes kept; the timing settings below are params of the timed jobs
    only, so Snakemake re-runs them and what reads them): QLoRA's training with a busy process beside its first
    attempt (reruns 2), then the whole report with one beside the first attempt of every rerun-checked job and no
    reruns allowed."""
    import shutil

    from conftest import snakemake
    workdir = tmp_path_factory.mktemp("planted") / "run"
    shutil.copytree(test_run, workdir, symlinks=True)
    overlay = _overlay(workdir, "rerun.yaml", 2)
    snakemake(workdir, "--configfile", "configs/test.yaml", overlay, "--cores", "2",
              "results/metrics/qlora/train_time_s.json")
    from qrepro.metrics_io import read_metric
    rerun = {name: read_metric(workdir / f"results/metrics/qlora/{name}.json")
             for name in ("train_time_s", "step_time_s", "time_per_step_s")}
    rerun_log = (workdir / "results/logs/finetune_qlora.log").read_text()
    snakemake(workdir, "--configfile", "configs/test.yaml", _overlay(workdir, "norerun.yaml", 0), "--cores", "2",
              "report")
    return workdir, rerun, rerun_log


@pytest.mark.slow
def test_a_loaded_training_is_redone_from_the_same_start_and_every_attempt_is_kept(planted_run):
    workdir, files, log = planted_run
    attempts = files["train_time_s"]["details"]["attempts"]
    first, kept = attempts[0], attempts[-1]
    assert first["planted_busy_process"] and first["outside_load_observed"] and first["outside_cores_mean"] > 0.3
    assert len(attempts) >= 2 and not any(a["planted_busy_process"] for a in attempts[1:])
    assert "redoing the timed work" in log
    # each attempt trained the whole run from the start (not a resume of the discarded one)
    assert all(a["resumed_from"] is None and a["steps"] == attempts[0]["steps"] for a in attempts)
    # the files hold the kept (last) attempt: its time, its median step, its observation
    assert files["train_time_s"]["value"] == kept["train_time_s"]
    assert files["step_time_s"]["value"] == kept["step_time_s"]
    assert files["time_per_step_s"]["value"] == pytest.approx(kept["train_time_s"] / kept["steps"])
    observed = files["train_time_s"]["details"]["observed_load"]
    assert observed["outside_cores_mean"] == kept["outside_cores_mean"]
    for record in files.values():
        assert record["details"]["attempts"] == attempts and record["details"]["reruns_allowed"] == 2
        # clean unless the machine itself stayed busy through every rerun: then marked, never silently
        assert record.get("contaminated", False) == kept["outside_load_observed"]
    assert f"Attempt {len(attempts)} was kept" in files["train_time_s"]["method"] or kept["outside_load_observed"]


@pytest.mark.slow
def test_with_no_reruns_a_loaded_timing_and_all_it_feeds_are_marked(planted_run):
    import csv
    import subprocess
    from qrepro.metrics_io import read_metric
    workdir = planted_run[0]
    metrics = workdir / "results/metrics"
    for variant in ("full", "qlora"):
        record = read_metric(metrics / f"{variant}/train_time_s.json")
        assert record["contaminated"] and len(record["details"]["attempts"]) == 1
        assert "CONTAMINATED" in record["method"]
        assert read_metric(metrics / f"{variant}/mfu_analytic.json")["contaminated"]
        assert "contaminated" not in read_metric(metrics / f"{variant}/train_loss_final.json")
    slowdown = read_metric(metrics / "comparison/training_slowdown_percent_total.json")
    assert slowdown["contaminated"] and "results/metrics/qlora/train_time_s.json" in \
        slowdown["details"]["contaminated_inputs"]
    assert "contaminated" not in read_metric(metrics / "comparison/perplexity_change_percent_token.json")
    # tables: the audit CSV says which cells are contaminated; the shown cell carries the mark
    rows = [row for path in (workdir / "results/tables").glob("table*.csv") for row in csv.DictReader(open(path))]
    marked = {row["source"] for row in rows if row["contaminated"] == "True"}
    assert "results/metrics/qlora/train_time_s.json" in marked
    assert not any("perplexity" in source for source in marked)
    html = (workdir / "report/report.html").read_text()
    assert html.count(M) > 10 and "Contaminated: every attempt" in html
    pdf = subprocess.run(["pdftotext", str(workdir / "report/report.pdf"), "-"], capture_output=True, text=True).stdout
    assert M in pdf and "Contaminated: every attempt" in " ".join(pdf.split())
    figure = subprocess.run(["pdftotext", str(workdir / "results/figures/figure1.pdf"), "-"], capture_output=True,
                            text=True).stdout
    assert M in figure
