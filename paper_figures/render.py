#!/usr/bin/env python
"""Stage `figures`: run every paper_figures notebook with papermill, then write the HTML report.

    python paper_figures/render.py [--root .] [--out paper_figures/out] [--only NOTEBOOK ...]

* checks every input file first; a missing one stops the stage with one line naming it (exit 2);
* executes the notebooks (kernel ``python3``) with the input paths, the output folder and the scale
  tier (``tier`` in params.yaml) as papermill parameters; executed copies go to ``<out>/notebooks/``
  with their timing metadata removed, so re-rendering the same inputs gives the same files;
* a figure whose inputs hold no rows for it in this configuration (``figlib.EmptySelection``, e.g. a grid
  without IMP) is listed as "not run in this configuration" with the reason, and the others render (every
  cell runs); any other notebook error (a malformed input) fails the stage;
* checks that every other expected item was written and is non-empty;
* writes ``<out>/manifest.json`` (every expected item and its files) and ``<out>/index.html`` (each
  item with the paper's caption, the tier, the figure PNG/SVG or the table, the paper's own values
  where it states them, and remarks from the notebooks); the page opens with the claims scorecard of
  ``metrics/claims_detail.json`` (stage ``claims``, when present) and lists beside each item the verdicts
  it supports.

This file is the entry point only: the items are data (``items.yaml``, checked by ``figcatalogue.py``),
``fignotebooks.py`` runs the notebooks and ``figreport.py`` writes the manifest and the page.
Only CSV/JSON/NPZ/YAML are read; nothing here or in the notebooks imports torch or repro.
"""
from __future__ import annotations

import argparse
from functools import partial
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by file path (the tests): its modules sit beside it
    sys.path.append(str(HERE))

from figcatalogue import CatalogueError, load  # noqa: E402

from repro.base import cpus, timing  # noqa: E402
from fignotebooks import (NOTEBOOKS, RenderError, check_inputs, check_outputs, coalesce_streams,  # noqa: E402
                          read_tier, run_notebook, scrub)
from figreport import item_claims_html, sanity_html, scorecard_html, write_manifest, write_report  # noqa: E402

#: what the tests (and repro/claims, for the item ids) use through this module
__all__ = ["ITEMS", "PAPERS", "main", "coalesce_streams", "scrub", "item_claims_html", "sanity_html",
           "scorecard_html"]

try:  # the catalogue, in report order; a malformed items.yaml is one line naming the item and the key
    PAPERS, ITEMS = load(notebooks=NOTEBOOKS)
except CatalogueError as err:
    if __name__ != "__main__":
        raise
    print(f"[figures] error: {err}", file=sys.stderr, flush=True)
    sys.exit(2)


def _notebook(root: Path, out: Path, tier: str, nb: str) -> tuple[str, float | None, dict, str | None]:
    """Run one notebook in a worker process: (name, seconds, items not run, error or None)."""
    try:
        seconds, skipped = run_notebook(nb, root, out, tier, ITEMS)
        return nb, seconds, skipped, None
    except RenderError as err:
        return nb, None, {}, str(err)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="pipeline root holding plots/, metrics/, analysis/, params.yaml")
    ap.add_argument("--out", default=None, help="output folder (default <root>/paper_figures/out)")
    ap.add_argument("--only", nargs="+", choices=sorted(NOTEBOOKS), help="run only these notebooks")
    a = ap.parse_args(argv)
    root = Path(a.root).resolve()
    out = Path(a.out).resolve() if a.out else root / "paper_figures" / "out"
    notebooks = a.only or list(NOTEBOOKS)
    not_run: dict[str, str] = {}  # item id -> why it was not drawn (its inputs hold no rows for it)
    t0 = time.time()
    try:
        with timing.stage_record("figures", root=root / timing.TIMING_ROOT):
            check_inputs(root, notebooks)
            tier = read_tier(root)
            out.mkdir(parents=True, exist_ok=True)
            # Notebooks in separate processes, one per CPU: papermill runs each kernel in ``cwd=root`` by
            # changing its process's working directory, so notebooks in threads of one process raced for it (a
            # kernel started in the repository, missed its inputs and wrote figures there; seen in CI).
            errors = []
            work = partial(_notebook, root, out, tier)
            for nb, seconds, skipped, err in cpus.parallel_map(work, notebooks, cpus.split(0, "cpu").workers):
                if err is not None:
                    errors.append(err)
                    continue
                not_run.update(skipped)
                print(f"[figures] {nb}.ipynb: {seconds:.1f} s", flush=True)
            if errors:
                raise RenderError(errors[0])
            check_outputs(out, ITEMS, not_run, notebooks)
            write_manifest(out, ITEMS, not_run, tier)
            write_report(out, root, tier, ITEMS, PAPERS, not_run)
    except RenderError as err:
        print(f"[figures] error: {err}", file=sys.stderr, flush=True)
        return 2
    n = sum(1 for it in ITEMS if it["files"] and it["id"] not in not_run)
    skipped = f" + {len(not_run)} not run in this configuration ({', '.join(sorted(not_run))})" if not_run else ""
    na = sum(1 for it in ITEMS if it.get("status") == "not yet available")
    print(f"[figures] {n} items{skipped}{f' + {na} not yet available' if na else ''} -> {out / 'index.html'} in "
          f"{time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
