"""What else ran on the machine while a timed block ran: the machine's CPU time (Linux /proc/stat) against this
process's own (getrusage), and the load average. Shared layer; no torch.

The scheduler's guarantee (runlog.alone_evidence: no other job of this workflow ran) says nothing about the rest of
the machine; this is the observation. CPU time the machine spent outside the timed processes is "outside load":
other programs, the Snakemake scheduler itself, the kernel's own work and, on a virtual machine, time the hypervisor
gave to other guests (steal)."""
from __future__ import annotations

import os
import resource
import time

USER_HZ = os.sysconf("SC_CLK_TCK")


def machine_cpu_s(stat_path: str = "/proc/stat") -> dict:
    """Seconds of CPU time since boot, summed over all CPUs: busy (user, nice, system, irq, softirq) and steal."""
    with open(stat_path) as handle:
        fields = handle.readline().split()
    if fields[0] != "cpu":
        raise ValueError(f"{stat_path}: the first line is not the all-CPU total: {' '.join(fields)}")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return {"busy": (user + nice + system + irq + softirq) / USER_HZ, "steal": steal / USER_HZ}


def process_cpu_s() -> float:
    """CPU time of this process, all its threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class MachineLoad:
    """Observe the machine over a block: `with MachineLoad() as load: ...`, then load.report(own_cpu_s=...)."""

    def __enter__(self) -> "MachineLoad":
        self._start = (time.perf_counter(), machine_cpu_s(), process_cpu_s(), os.getloadavg()[0])
        self._end = None
        return self

    def __exit__(self, *exc) -> None:
        self._end = (time.perf_counter(), machine_cpu_s(), process_cpu_s(), os.getloadavg()[0])

    def process_cpu_s(self) -> float:
        """This process's CPU time over the block."""
        return self._end[2] - self._start[2]

    def so_far(self, threshold_cores: float) -> dict:
        """The observation from the block's start to now (or to its end, once it ended), this process's CPU time
        as the timed work's: what a checkpoint keeps of a run that may be resumed by another process."""
        end = self._end or (time.perf_counter(), machine_cpu_s(), process_cpu_s(), os.getloadavg()[0])
        return self._report(end, threshold_cores, end[2] - self._start[2], 1)

    def report(self, threshold_cores: float, timed_cpu_s: float | None = None, timed_processes: int = 1) -> dict:
        """The observation. timed_cpu_s: CPU time of every process of the timed work over the block (several
        data-parallel ranks: their sum); this process's own by default. Outside load is observed when the machine
        spent more than threshold_cores x wall seconds of CPU time outside them."""
        if self._end is None:
            raise RuntimeError("MachineLoad.report() before its block ended")
        return self._report(self._end, threshold_cores,
                            self.process_cpu_s() if timed_cpu_s is None else timed_cpu_s, timed_processes)

    def _report(self, end: tuple, threshold_cores: float, own: float, timed_processes: int) -> dict:
        wall = end[0] - self._start[0]
        busy = end[1]["busy"] - self._start[1]["busy"]
        steal = end[1]["steal"] - self._start[1]["steal"]
        outside = max(0.0, busy - own) + steal
        mean_cores = outside / wall if wall > 0 else 0.0
        return {"wall_s": wall, "timed_cpu_s": own, "timed_processes": timed_processes,
                "timed_cores_used_mean": own / wall if wall > 0 else 0.0,
                "machine_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                "machine_busy_cpu_s": busy, "steal_s": steal,
                "outside_cpu_s": outside, "outside_cores_mean": mean_cores,
                "load_average_1min": [self._start[3], end[3]],
                "threshold_cores": threshold_cores, "outside_load_observed": mean_cores > threshold_cores,
                "how": "/proc/stat busy CPU time of the whole machine (user, nice, system, irq, softirq) plus steal, "
                       "minus the timed processes' own CPU time (getrusage), over the timed block; in a container "
                       "/proc/stat and machine_cpus cover the whole host (usable_cpus: the CPUs this job may use)"}


def combined(segments: list[dict], threshold_cores: float) -> dict:
    """One observation over the processes of a resumed run (each segment: one process's report up to the checkpoint
    the next resumed from, then the last process's): their wall and CPU seconds summed, the mean taken over all."""
    if len(segments) == 1:
        return segments[0]
    wall = sum(s["wall_s"] for s in segments)
    own = sum(s["timed_cpu_s"] for s in segments)
    outside = sum(s["outside_cpu_s"] for s in segments)
    mean_cores = outside / wall if wall > 0 else 0.0
    return {**segments[-1], "wall_s": wall, "timed_cpu_s": own, "timed_cores_used_mean": own / wall if wall else 0.0,
            "machine_busy_cpu_s": sum(s["machine_busy_cpu_s"] for s in segments),
            "steal_s": sum(s["steal_s"] for s in segments), "outside_cpu_s": outside, "outside_cores_mean": mean_cores,
            "threshold_cores": threshold_cores, "outside_load_observed": mean_cores > threshold_cores,
            "segments": segments,
            "how": segments[-1]["how"] + "; summed over the processes of a resumed run (segments), each observed "
                                         "up to the checkpoint the next one resumed from"}


class PlantedLoad:
    """A busy child process spinning on one core while the block runs (`with PlantedLoad(on): ...`): the outside
    load the reruns exist for, planted on purpose (config timing.plant_busy_attempts, for tests). Off: nothing."""

    SPIN = "while True:\n    pass\n"

    def __init__(self, on: bool):
        self.on = on
        self._process = None

    def __enter__(self) -> "PlantedLoad":
        if self.on:
            import subprocess
            import sys

            self._process = subprocess.Popen([sys.executable, "-c", self.SPIN])
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()


def attempt_entry(attempt: int, observed: dict, planted: bool, **values) -> dict:
    """What one attempt of a timed job leaves in its files (details.attempts): its observed load and its values."""
    return {"attempt": attempt, "outside_cores_mean": observed["outside_cores_mean"],
            "threshold_cores": observed["threshold_cores"], "outside_load_observed": observed["outside_load_observed"],
            "planted_busy_process": planted, **values}


def redo_while_loaded(work, timing: dict, plant: bool = True):
    """Run a timed job's work until an attempt observes no outside load, at most 1 + timing.reruns times.

    work(attempt) runs the timed work once (attempt 1, 2, ...) and returns (result, observation, values): its
    result, its MachineLoad observation (report()) and the values its files show (kept per attempt). Returns the
    last attempt's result and the rerun record: every attempt (attempt_entry), how many reruns were allowed, and
    whether the kept attempt is contaminated (every attempt observed outside load). With plant (rank 0 of a job),
    the first timing.plant_busy_attempts attempts run beside a planted busy process (PlantedLoad)."""
    allowed = timing["reruns"]
    attempts = []
    for attempt in range(1, allowed + 2):
        planted = plant and attempt <= timing.get("plant_busy_attempts", 0)
        with PlantedLoad(planted):
            result, observed, values = work(attempt)
        attempts.append(attempt_entry(attempt, observed, planted, **values))
        if not observed["outside_load_observed"]:
            break
        if attempt <= allowed:
            print(f"attempt {attempt}: outside load {observed['outside_cores_mean']:.2f} cores, above the "
                  f"{observed['threshold_cores']}-core threshold: redoing the timed work ({allowed - attempt + 1} "
                  "rerun(s) left)")
    contaminated = attempts[-1]["outside_load_observed"]
    if contaminated:
        print(f"every one of {len(attempts)} attempt(s) observed outside load: the last one is kept, marked "
              "contaminated")
    return result, {"attempts": attempts, "reruns_allowed": allowed, "contaminated": contaminated}
