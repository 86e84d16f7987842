"""Peak memory of a block of training: the CUDA allocator's peak, or the process's RSS above its baseline on CPU."""
from __future__ import annotations

import threading

import torch

from qrepro.units import MB


class PeakMemory:
    """Peak memory while the block runs.

    CUDA: torch.cuda.max_memory_allocated, the caching allocator's peak of live tensors (model weights
    included); details also give its rise above the allocation at the start of the block.
    CPU: the process's resident set size, sampled every 10 ms; the value is the peak above the RSS at the
    start of the block (the baseline: interpreter, libraries and the loaded model), so the Python runtime and
    model loading do not count. The CPU has no allocator-level peak to read, so none is reported.
    """

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._done = False

    def _rss(self) -> int:
        import psutil
        return psutil.Process().memory_info().rss

    def _sample(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(0.01)

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline_bytes = torch.cuda.memory_allocated()
        else:
            self.baseline_bytes = self.peak_bytes = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self._rss())
        self._done = True
        return False

    @property
    def mb(self) -> float:
        """The reported figure: the allocator's peak on CUDA, the peak RSS above the baseline on CPU."""
        return (self.peak_bytes if self.cuda else self.peak_bytes - self.baseline_bytes) / MB

    def current_mb(self) -> float:
        """The reported figure so far: while the block runs (for checkpoints), and its final value after it."""
        if self._done:
            return self.mb
        if self.cuda:
            return torch.cuda.max_memory_allocated() / MB
        return (max(self.peak_bytes, self._rss()) - self.baseline_bytes) / MB

    @property
    def details(self) -> dict:
        return {"baseline_mb": self.baseline_bytes / MB, "peak_mb": self.peak_bytes / MB,
                "peak_above_baseline_mb": (self.peak_bytes - self.baseline_bytes) / MB,
                "source": "torch.cuda.max_memory_allocated" if self.cuda else "process RSS (psutil), 10 ms sampling"}
