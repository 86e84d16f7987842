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
