"""Send a rule script's output to its Snakemake log file."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            yield
        except BaseException:
            import traceback
            traceback.print_exc(file=handle)
            # Snakemake shows stderr of a failed job; repeat the reason there, not only in the log.
            print(f"failed, see {path}: {sys.exc_info()[1]}", file=sys.__stderr__)
            raise


def alone_evidence(reserved_threads: int, scheduler_cores: int) -> dict:
    """Whether a timed job ran alone, and why: with Snakemake's local executor the rule reserves every core
    Snakemake was given (threads = --cores), so the scheduler can start no other job beside it.

    scheduler_cores is 0 where that cannot be known (a cluster executor, which places jobs on allocations of its
    own): the job is then not claimed to have run alone."""
    if not scheduler_cores:
        return {"ran_alone": False, "reserved_cores": reserved_threads, "scheduler_cores": None,
                "how": "not checked: a cluster executor ran this job; whether others shared its node is unknown"}
    if reserved_threads < scheduler_cores:
        raise RuntimeError(f"a timed job must run alone: it holds {reserved_threads} of the {scheduler_cores} cores "
                           "Snakemake was given, so other jobs could run beside it")
    return {"ran_alone": True, "reserved_cores": reserved_threads, "scheduler_cores": scheduler_cores,
            "how": "the rule reserves threads = every core given to Snakemake (--cores), so no other job of this "
                   "workflow ran at the same time"}
