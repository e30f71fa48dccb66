"""One generic registry of named components, and one instance per component kind.

Components register themselves beside their class::

    @FUSIONS.register("masktoken")
    class MaskTokenFusion(Fusion): ...

A registry imports the modules that hold its entries on first use, so `og info` and
`FUSIONS.get("masktoken")` see every entry without eager imports of heavy libraries.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterator
from typing import Any


class RegistryError(KeyError):
    """An unknown or duplicate component name; its message is one readable line."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it plain
        return str(self.args[0]) if self.args else ""


class Registry:
    """Named entries of one component kind (a class or a factory function each)."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules  # imported on first lookup, so entries register themselves
        self._entries: dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: register the class or function under `name`; duplicates are refused."""

        def decorator(obj: Any) -> Any:
            if name in self._entries and self._entries[name] is not obj:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered by {self._entries[name]!r}; "
                    "pick another name"
                )
            self._entries[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def get(self, name: str) -> Any:
        """The entry called `name`; an unknown name lists the valid ones and the closest match."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"unknown {self.kind} {name!r}.{hint} Valid: {', '.join(names) or '(none)'}")

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the entry (a class or factory) with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style glob (`*clip*`)."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def describe(self) -> dict[str, str]:
        """Name -> the first line of the entry's docstring."""
        self._load()
        return {n: ((self._entries[n].__doc__ or "").strip().splitlines() or [""])[0] for n in self.list()}

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


ENCODERS = Registry("encoder", ("og.encoders",))
SEGMENTERS = Registry("segmenter", ("og.segmenters",))
DOWNSAMPLERS = Registry("downsampler", ("og.fusion",))
FUSIONS = Registry("fusion", ("og.fusion",))
POSITIONS = Registry("position encoding", ("og.fusion",))
PROJECTORS = Registry("projector", ("og.model.projector",))
LLMS = Registry("llm", ("og.llm",))
BENCHMARKS = Registry("benchmark", ("og.eval.benchmarks",))

ALL_REGISTRIES: dict[str, Registry] = {
    "encoders": ENCODERS,
    "segmenters": SEGMENTERS,
    "downsamplers": DOWNSAMPLERS,
    "fusions": FUSIONS,
    "positions": POSITIONS,
    "projectors": PROJECTORS,
    "llms": LLMS,
    "benchmarks": BENCHMARKS,
}
