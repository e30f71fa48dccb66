"""Results files: writing and reading them, and the rich table printed after a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

RESULTS_NAME = "results.json"
MISSING_IMAGES_LIMIT = 0.05  # above this fraction of items without an image, a run says so first


def missing_images_warning(bench: str, missing: int, total: int, hint: str = "") -> str | None:
    """The warning a run prints first (and stores) when more than 5 % of its items have no image."""
    if not total or missing / total <= MISSING_IMAGES_LIMIT:
        return None
    where = f"; {hint}" if hint else "; check --images / --data"
    return (f"WARNING {bench}: {missing} of {total} items ({100 * missing / total:.1f} %) have no image and are "
            f"scored as wrong{where}")


def run_warnings(record: dict[str, Any]) -> list[str]:
    """The warnings of every benchmark of a results record, in order."""
    return [run["missing_images_warning"] for run in record["benchmarks"].values()
            if run.get("missing_images_warning")]


def write_results(record: dict[str, Any], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_NAME
    path.write_text(json.dumps(record, indent=1))
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file (or the folder holding `results.json`); a clear error when it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} not found; pass the results.json written by `og eval`")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON ({err}); pass a results.json written by `og eval`") from None
    if not isinstance(record, dict) or "benchmarks" not in record:
        raise ValueError(f"{path} has no 'benchmarks'; pass a results.json written by `og eval`")
    return record


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def headline_scores(record: dict[str, Any]) -> dict[str, float | None]:
    """'bench/metric' -> score for every benchmark's headline metrics, in order."""
    return {
        f"{name}/{metric}": run["scores"].get(metric)
        for name, run in record["benchmarks"].items() for metric in run["headline"]
    }


def results_table(record: dict[str, Any]) -> Table:
    """Headline scores per benchmark with the item and missing-image counts."""
    model = record["model"].get("spec") or record["model"].get("name", "?")
    table = Table(title=f"{model}  ({record['mode']})", title_justify="left")
    for col in ("benchmark", "metric", "score", "items", "missing images", "unanswered"):
        table.add_column(col, justify="right" if col not in ("benchmark", "metric") else "left")
    for name, run in record["benchmarks"].items():
        for n, metric in enumerate(run["headline"]):
            counts = (str(run["n_items"]), str(run["missing_images"]), str(run["unanswered"])) if n == 0 else ("",) * 3
            table.add_row(name if n == 0 else "", metric, fmt(run["scores"].get(metric)), *counts)
    return table
