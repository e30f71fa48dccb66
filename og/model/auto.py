"""og's classes in transformers' Auto classes, registered without importing transformers.

`import og` calls `install()`. Importing transformers' auto modules costs seconds (they import
torch), so og does not import them: it registers when they are first imported, by whomever.
A finder at the front of `sys.meta_path` wraps the loading of each auto module below and, right
after the module has run, imports the og module whose last lines register og's class with it:

| transformers module | og module | registers with |
|---|---|---|
| `configuration_auto` | `og.model.configuration` | `AutoConfig` ("og_llava") |
| `modeling_auto` | `og.model.modeling` | `AutoModelForImageTextToText`, `AutoModelForCausalLM` |
| `processing_auto` | `og.model.processing` | `AutoProcessor` |

Auto modules already imported when `install()` runs are registered at once. After `import og`,
`AutoModelForImageTextToText.from_pretrained(dir)` loads a directory written by `og.model.save`.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.abc alone would import importlib.resources, tempfile, random, ...
    from importlib.machinery import ModuleSpec

REGISTRARS = {
    "transformers.models.auto.configuration_auto": "og.model.configuration",
    "transformers.models.auto.modeling_auto": "og.model.modeling",
    "transformers.models.auto.processing_auto": "og.model.processing",
}


def _register(auto_module: str) -> None:
    """Import the og module that registers with `auto_module` (a no-op while it is being imported:
    its own last lines register then)."""
    importlib.import_module(REGISTRARS[auto_module])


class _RegisteringLoader:
    """A loader (the import protocol's duck type) that runs the wrapped loader, then registers og
    with the module it loaded."""

    def __init__(self, loader: Any, name: str) -> None:
        self.loader, self.name = loader, name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register(self.name)

    def __getattr__(self, attr: str) -> Any:  # get_source, get_filename, ... of the wrapped loader
        return getattr(self.loader, attr)


class _AutoModuleFinder:
    """A meta path finder that finds transformers' auto modules through the other finders and wraps
    their loader."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        if fullname not in REGISTRARS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisteringLoader(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Register og with the auto modules imported so far, and with the others when they are imported."""
    if not any(isinstance(f, _AutoModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AutoModuleFinder())
    for auto_module in REGISTRARS:
        if auto_module in sys.modules:
            _register(auto_module)
