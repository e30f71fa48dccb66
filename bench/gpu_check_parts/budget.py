"""Time limits per part. A part is entered (possibly several times: `with part: ...`) and its
time adds up; code inside checks `part.out_of_time()` between units of work (steps, generations,
runs, images) and stops there, which marks the part `reached`. A hard limit (the soft limit times
`hard_factor`) interrupts a unit that runs far over: a SIGALRM raises `HardLimit` inside the part.
`hard_factor=None` keeps to soft limits (CPU runs: an interrupted compile of DeepSpeed's CPU op
would leave its build lock behind, and every later DeepSpeed run would wait on it)."""

from __future__ import annotations

import signal
import time
from types import TracebackType


class HardLimit(Exception):
    """A part ran past its hard limit and was interrupted."""


class Part:
    """One part's time account: `limit_s` soft, `limit_s * hard_factor` hard (None: no hard limit)."""

    def __init__(self, name: str, limit_s: float, hard_factor: float | None = 1.25) -> None:
        self.name, self.limit_s = name, float(limit_s)
        self.hard_s = float(limit_s) * hard_factor if hard_factor else None
        self.spent = 0.0
        self.reached = False  # the soft limit stopped it (or the hard one interrupted it)
        self.interrupted = False
        self._start: float | None = None

    def elapsed(self) -> float:
        return self.spent + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def out_of_time(self) -> bool:
        """True (and `reached` set) once the part has used its limit."""
        if self.elapsed() >= self.limit_s:
            self.reached = True
        return self.reached

    def _alarm(self, signum: int, frame: object) -> None:
        raise HardLimit(f"part {self.name!r} ran past its hard limit of {self.hard_s:.0f} s")

    def __enter__(self) -> Part:
        self._start = time.perf_counter()
        self._armed = self.hard_s is not None and hasattr(signal, "SIGALRM")
        if self._armed:
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.hard_s - self.spent, 0.01))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
        self.spent += time.perf_counter() - self._start
        self._start = None
        if isinstance(error, HardLimit):
            self.reached = self.interrupted = True
            return True  # swallowed: the part reports what it had done
        return False

    def summary(self) -> dict[str, object]:
        return {"limit_s": self.limit_s, "hard_limit_s": self.hard_s, "spent_s": round(self.spent, 2),
                "reached": self.reached,
                "interrupted": self.interrupted}
