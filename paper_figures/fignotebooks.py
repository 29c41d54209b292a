"""The notebooks of the report: their inputs, running them with papermill (one at a time), and what they wrote.

* :func:`check_inputs`: every input file of the notebooks exists and is non-empty;
* :func:`run_notebook`: executes one notebook (kernel ``python3``) with the input paths, the output folder
  and the tier as papermill parameters, into ``<out>/notebooks/``, then :func:`scrub`\\ s its timing
  metadata; items whose inputs hold no rows in this configuration (``figlib.EmptySelection``) come back
  as "not run" with the reason, any other notebook error is a :class:`RenderError`;
* :func:`check_outputs`: every other item's files were written and are non-empty.
"""
from __future__ import annotations

import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNEL = "python3"

#: input name -> path relative to the pipeline root (the notebooks' parameters)
INPUTS = {
    "curves": "plots/curves.csv",
    "double_win": "metrics/double_win.json",
    "double_win_levels": "plots/double_win_levels.json",
    "domain_gap": "analysis/domain_gap.json",
    "segment": "metrics/segment.json",
    "analysis_dir": "analysis",
}
#: files inside analysis/ that dw_analysis reads (the per-run landscape NPZs are checked by the notebook)
ANALYSIS_FILES = ["landscape/index.csv", "kernel_maps.npz", "mask_similarity.csv", "zero_kernels.csv"]
PARAMS_FILE = "params.yaml"
PAPER_VALUES = HERE / "paper_values.yaml"

#: notebook -> the INPUTS it takes as parameters (besides out_dir, tier, lib_dir), in the order they run
NOTEBOOKS = {
    "dw_analysis": ["analysis_dir"],
    "rt_tickets": ["curves"],
    "dw_transfer": ["curves", "double_win", "double_win_levels", "paper_values"],
    "rt_properties": ["curves", "domain_gap", "paper_values"],
    "segmentation": ["segment", "curves"],
}


class RenderError(Exception):
    """An expected failure: printed as one line, exit code 2."""


# --------------------------------------------------------------------------- inputs

def input_files(root: Path, notebooks) -> list[Path]:
    files = [root / PARAMS_FILE, PAPER_VALUES]
    for nb in notebooks:
        for name in NOTEBOOKS[nb]:
            if name == "analysis_dir":
                files += [root / INPUTS[name] / f for f in ANALYSIS_FILES]
            elif name != "paper_values":
                files.append(root / INPUTS[name])
    return list(dict.fromkeys(files))


def check_inputs(root: Path, notebooks) -> None:
    for f in input_files(root, notebooks):
        if not f.is_file():
            raise RenderError(f"missing input file: {f} (run `dvc repro` for the stage that writes it)")
        if f.stat().st_size == 0:
            raise RenderError(f"empty input file: {f}")


def read_tier(root: Path) -> str:
    import yaml

    p = yaml.safe_load((root / PARAMS_FILE).read_text()) or {}
    return str(p.get("tier", "default"))


# --------------------------------------------------------------------------- running

def run_notebook(nb: str, root: Path, out: Path, tier: str, items: list[dict]) -> tuple[float, dict[str, str]]:
    """Execute ``nb``: (seconds, {item id: why it was not drawn} for its items without input rows)."""
    import papermill as pm

    # paths relative to the pipeline root (the kernel's working directory) when inside it, so that the
    # outputs do not depend on where the repository is checked out
    params = {"out_dir": _rel(out, root), "tier": tier, "lib_dir": _rel(HERE, root)}
    for name in NOTEBOOKS[nb]:
        params[name] = _rel(PAPER_VALUES, root) if name == "paper_values" else INPUTS[name]
    dst = out / "notebooks" / f"{nb}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    not_run: dict[str, str] = {}
    t0 = time.time()
    try:  # allow_errors: every cell runs, so one figure without inputs does not stop the others
        pm.execute_notebook(str(HERE / f"{nb}.ipynb"), str(dst), parameters=params, kernel_name=KERNEL,
                            cwd=str(root), progress_bar=False, log_output=False, allow_errors=True)
    except pm.PapermillExecutionError as e:
        reasons = _not_run_reasons(nb, dst, items) if dst.is_file() else None
        if reasons is None:  # a malformed input (or a bug): the stage fails
            msg = (str(e.evalue).strip().splitlines() or [""])[0]
            raise RenderError(f"{nb}.ipynb failed: {e.ename}: {msg}") from None
        not_run.update(reasons)
    finally:
        if dst.is_file():
            scrub(dst)
    return time.time() - t0, not_run


def _not_run_reasons(nb: str, executed: Path, items: list[dict]) -> dict[str, str] | None:
    """Items of ``nb`` whose cell stopped on ``EmptySelection`` (figlib.pick: the inputs have no rows for
    that figure, e.g. a grid without IMP) -> the reason; None when any cell failed otherwise."""
    import nbformat

    cells = nbformat.read(executed, as_version=4).cells
    errors = [(c.source, o) for c in cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    # a NameError after an EmptySelection: a later cell uses what the skipped cell would have defined
    for n, (_, o) in enumerate(errors):
        if o["ename"] != "EmptySelection" and not (o["ename"] == "NameError" and n > 0):
            return None
    if errors[0][1]["ename"] != "EmptySelection":
        return None
    out = {}
    for it in (i for i in items if i["notebook"] == nb):
        stems = {f.rsplit(".", 1)[0] for f in it["files"]}
        hit = [n for n, (src, _) in enumerate(errors) if it["id"] in src or any(st in src for st in stems)]
        if hit:
            first = errors[hit[0]][1] if errors[hit[0]][1]["ename"] == "EmptySelection" else next(
                o for _, o in reversed(errors[:hit[0]]) if o["ename"] == "EmptySelection")
            out[it["id"]] = f"no input rows for it: {first['evalue'].strip().splitlines()[0]}"
    return out


def _rel(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same stream into one. The kernel sends printed text in
    messages cut by time, not by print call, so the same prints arrive as one stream output or as
    several depending on timing; merged, the executed notebook's bytes do not depend on it."""
    merged: list = []
    for o in outputs:
        if (o.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == o.get("name")):
            merged[-1]["text"] = "".join(merged[-1]["text"]) + "".join(o["text"])
        else:
            merged.append(o)
    return merged


def scrub(path: Path) -> None:
    """Drop papermill's and the kernel's timing metadata from an executed notebook, and merge the
    stream outputs the kernel split by timing (:func:`coalesce_streams`)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    pmeta = nb.metadata.get("papermill", {})
    for k in ("start_time", "end_time", "duration", "environment_variables", "version", "input_path", "output_path"):
        pmeta.pop(k, None)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"          # papermill gives it a random id
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.outputs = coalesce_streams(cell.outputs)
        cm = cell.metadata.get("papermill", {})
        for k in ("start_time", "end_time", "duration"):
            cm.pop(k, None)
    nbformat.write(nb, path)


# --------------------------------------------------------------------------- outputs

def check_outputs(out: Path, items: list[dict], not_run: dict[str, str], notebooks=tuple(NOTEBOOKS)) -> None:
    for it in items:
        if it["id"] in not_run or it["notebook"] not in notebooks:
            continue
        for f in it["files"]:
            p = out / f
            if not p.is_file() or p.stat().st_size == 0:
                raise RenderError(f"{it['paper']} {it['label']}: expected output {p} was not written "
                                  f"by {it['notebook']}.ipynb")
