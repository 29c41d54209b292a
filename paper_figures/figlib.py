"""Shared helpers of the paper_figures notebooks: loading, colours, curves, deterministic saving.

Notebooks read only the pipeline's tracked files (CSV / JSON / NPZ) and
``paper_values.yaml``; they never import torch or the ``repro`` package.

* Loading: every loader goes through :func:`require`, which raises
  :class:`MissingInput` naming the file; :func:`pick` raises
  :class:`EmptySelection` naming the file and the selection, so a notebook never
  draws an empty panel.
* Style: one colour per pretraining kind in every figure (:data:`KIND_COLORS`);
  ticket methods differ by line style and marker (:data:`METHOD_STYLES`).
* Saving: PNG and SVG with no timestamps or software versions, a fixed SVG hash
  salt, and tables as CSV plus Markdown (:func:`save_figure`, :func:`save_table`).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# --------------------------------------------------------------------------- style

#: one colour per pretraining kind, in every figure (Okabe-Ito; DW uses orange/green/blue for STD/FAT/AT)
KIND_COLORS = {
    "standard": "#E69F00",
    "fast_adversarial": "#009E73",
    "pgd_adversarial": "#0072B2",
    "random_smoothing": "#CC79A7",
}
KIND_LABELS = {
    "standard": r"$\theta_{\mathrm{STD}}$ (natural)",
    "fast_adversarial": r"$\theta_{\mathrm{FAT}}$ (fast adv.)",
    "pgd_adversarial": r"$\theta_{\mathrm{AT}}$ (PGD adv.)",
    "random_smoothing": r"$\theta_{\mathrm{RS}}$ (random smoothing)",
}
#: ticket method -> (line style, marker)
METHOD_STYLES = {
    "dense": ("-", "o"),
    "imp": ("-", "o"),
    "a_imp": ("--", "s"),
    "a_imp_ds": (":", "^"),
    "omp": ("-.", "D"),
    "random": (":", "X"),
    "lmp": ("-", "v"),
    "omp_row": ("-", "D"),
    "omp_kernel": ("-", "D"),
    "omp_channel": ("-", "D"),
}
METHOD_LABELS = {
    "dense": "dense",
    "imp": r"IMP $m^{\mathrm{ST}}$",
    "a_imp": r"A-IMP upstream $m^{\mathrm{AT}}$",
    "a_imp_ds": "A-IMP downstream",
    "omp": "OMP",
    "random": r"random pruning $m^{\mathrm{RP}}$",
    "lmp": "LMP",
    "omp_row": "OMP row-wise",
    "omp_kernel": "OMP kernel-wise",
    "omp_channel": "OMP channel-wise",
}
class _MetricLabels(dict):
    """Labels of the metrics; the RT Adv-Acc sweep's ``adv_acc@<eps>`` are labelled with their budget."""

    def __missing__(self, key: str) -> str:
        if key.startswith("adv_acc@"):
            return f"Adv-Acc, PGD-20 at eps {key.split('@', 1)[1]} (%)"
        raise KeyError(key)


class _PercentMetrics(set):
    def __contains__(self, key) -> bool:
        return super().__contains__(key) or str(key).startswith("adv_acc@")


def aa_label(params_file: str = "params.yaml") -> str:
    """The name of ``ra_aa``'s attack for the params that produced the outputs: the same text as
    ``repro.config.evaluation.aa_name`` (checked by tests/test_autoattack.py), "AutoAttack (standard: ...)" or
    "AutoAttack, cut (...)" naming the members and settings that ran."""
    std = (["apgd-ce", "apgd-t", "fab-t", "square"], 100, 9, 5000)
    try:
        import yaml

        with open(params_file) as f:
            ev = (yaml.safe_load(f) or {}).get("evaluation", {})
    except OSError:
        ev = {}
    members = list(ev.get("aa_members", std[0]))
    steps, targets, queries = ev.get("aa_steps", 100), ev.get("aa_target_classes", 9), ev.get("aa_queries", 5000)
    names = [{"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}.get(m, m) for m in members]
    if (members, steps, targets, queries) == std:
        return f"AutoAttack (standard: {', '.join(names)})"
    settings = ([f"{steps} it."] if {"apgd-ce", "apgd-t", "fab-t"} & set(members) else []) + \
        ([f"{targets} targets"] if {"apgd-t", "fab-t"} & set(members) else []) + \
        ([f"{queries:,} queries"] if "square" in members else [])
    return f"AutoAttack, cut ({' + '.join(names)}; {', '.join(settings)})"


AA_LABEL = aa_label()
METRIC_LABELS = _MetricLabels({
    "sa": "SA (%)",
    "ra": "RA, PGD-20 (%)",
    "ra_aa": f"RA, {AA_LABEL} (%)",
    "ece": "ECE (15 bins)",
    "nll": "NLL (nats)",
    "ood_auroc": "OoD ROC-AUC",
    "transfer_attack_acc": "transfer-attack acc. (%)",
    "measured_sparsity": "measured sparsity (%)",
})
PERCENT_METRICS = _PercentMetrics({"sa", "ra", "ra_aa", "transfer_attack_acc", "measured_sparsity"})
def _train_attack_label(params_file: str = "params.yaml") -> str:
    """'PGD-k' of the adversarial fine-tuning that produced the outputs (params.yaml, run from the pipeline root)."""
    try:
        import yaml

        with open(params_file) as f:
            steps = (yaml.safe_load(f) or {}).get("transfer", {}).get("attack", {}).get("steps", 10)
    except OSError:
        steps = 10  # the official default
    return f"PGD-{steps}"


TRAIN_ATTACK = _train_attack_label()
REGIME_LABELS = {
    "standard": "standard fine-tuning",
    "adversarial": f"adversarial fine-tuning ({TRAIN_ATTACK})",
    "linear": "linear evaluation",
    "mask": "LMP (mask learning, frozen weights)",
}
TASK_LABELS = {
    "synth_near": "synth_near",
    "synth_mid": "synth_mid",
    "synth_far": "synth_far",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
}
_TASK_ORDER = ["synth_near", "synth_mid", "synth_far", "cifar10", "cifar100", "svhn"]

CURVE_COLUMNS = ["kind", "method", "task", "regime", "fraction", "level", "n_seeds", "sa_mean", "sa_std"]


def setup() -> None:
    """Deterministic, readable matplotlib defaults."""
    plt.rcParams.update({
        "svg.hashsalt": "repro-paper-figures",
        "svg.fonttype": "path",
        "font.size": 9,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def kind_color(kind: str) -> str:
    return KIND_COLORS.get(kind, "#555555")


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def series_label(kind: str, method: str) -> str:
    return f"{kind_label(kind)}, {method_label(method)}"


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task)


def task_order(tasks: Iterable[str]) -> list[str]:
    tasks = set(tasks)
    known = [t for t in _TASK_ORDER if t in tasks]
    return known + sorted(tasks - set(known))


def pct(x: float) -> str:
    """0.7379 -> '73.79', 0.488 -> '48.8', 0 -> '0'."""
    s = f"{100 * float(x):.2f}".rstrip("0").rstrip(".")
    return s or "0"


def fraction_label(f: float) -> str:
    return f"{pct(f)} % data"


# --------------------------------------------------------------------------- loading

class MissingInput(FileNotFoundError):
    """An input file of the figures is missing or empty; the message names it."""


class EmptySelection(ValueError):
    """A figure would be empty: the named file has no rows for the selection."""


def require(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"missing input file: {p} (run the pipeline stage that writes it, e.g. `dvc repro`)")
    if p.stat().st_size == 0:
        raise MissingInput(f"empty input file: {p}")
    return p


def load_json(path) -> dict:
    p = require(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None


def load_yaml(path) -> dict:
    import yaml

    p = require(path)
    return yaml.safe_load(p.read_text()) or {}


def load_csv(path, columns: Sequence[str] = ()) -> pd.DataFrame:
    p = require(path)
    df = pd.read_csv(p)
    if df.empty and list(df.columns) == ["empty"]:  # how the analysis stage writes a table with no rows
        raise EmptySelection(f"{p}: no rows (nothing of this kind was run in this configuration)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing}")
    return df


def load_npz(path) -> dict[str, np.ndarray]:
    p = require(path)
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def load_curves(path, paper: str | None = None) -> pd.DataFrame:
    """``plots/curves.csv`` with float ``fraction``/``level`` (levels rounded to 6 digits).

    ``paper`` (``dw`` | ``rt``): only the groups that paper's figures read (column ``papers``, written by the
    summary stage: per regime, the runs of the recipe its experiments name, e.g. RT's fine-tuning); a file
    without the column (every run with its regime's own recipe) is read whole."""
    df = load_csv(path, CURVE_COLUMNS)
    if paper is not None and "papers" in df.columns:
        df = df[df["papers"].fillna("").astype(str).str.split().map(lambda ps: paper in ps)].reset_index(drop=True)
    df["fraction"] = df["fraction"].astype(float)
    df["level"] = df["level"].astype(float).round(6)
    df.attrs["source"] = str(path)
    return df


def pick(df: pd.DataFrame, source=None, **eq) -> pd.DataFrame:
    """Rows of ``df`` with column == value for every keyword; EmptySelection (naming the file) if none."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in eq.items():
        if isinstance(v, (list, tuple, set)):
            mask &= df[k].isin(list(v)).to_numpy()
        elif isinstance(v, float):
            mask &= np.isclose(df[k].astype(float), v)
        else:
            mask &= (df[k] == v).to_numpy()
    out = df[mask]
    if out.empty:
        src = source or df.attrs.get("source", "input")
        sel = ", ".join(f"{k}={v}" for k, v in eq.items())
        raise EmptySelection(f"{src}: no rows for {sel}")
    return out


def curve(cur: pd.DataFrame, kind: str, method: str, task: str, regime: str, fraction: float,
          metric: str, with_dense: bool = True) -> pd.DataFrame:
    """One series: columns level, mean, std, n (sorted by level); the dense model at level 0 first.

    Empty when the ticket has no rows (the dense point alone is not a series).
    """
    col = f"{metric}_mean"
    if col not in cur.columns:
        return pd.DataFrame(columns=["level", "mean", "std", "n"])
    base = cur[(cur.kind == kind) & (cur.task == task) & (cur.regime == regime)
               & np.isclose(cur.fraction, fraction) & cur[col].notna()]
    rows = base[base.method == method]
    if rows.empty:
        return pd.DataFrame(columns=["level", "mean", "std", "n"])
    if with_dense and method != "dense":
        dense = base[(base.method == "dense") & np.isclose(base.level, 0.0)]
        rows = pd.concat([dense, rows])
    std_col = f"{metric}_std"
    out = pd.DataFrame({
        "level": rows.level.to_numpy(float),
        "mean": rows[col].to_numpy(float),
        "std": rows[std_col].fillna(0.0).to_numpy(float) if std_col in rows else 0.0,
        "n": rows.n_seeds.to_numpy(int),
        # the checkpoint the numbers come from (evaluation.select; curves.csv of older runs: the last epoch)
        "checkpoint": rows["checkpoint"].fillna("last").astype(str).to_numpy() if "checkpoint" in rows else "last",
    }).sort_values("level", kind="stable").reset_index(drop=True)
    return out


# --------------------------------------------------------------------------- notes for the report

NOTES: dict[str, list[str]] = {}


def note(item: str, text: str) -> None:
    """Record a remark for the report (e.g. a series absent from the inputs)."""
    NOTES.setdefault(item, [])
    if text not in NOTES[item]:
        NOTES[item].append(text)
    print(f"note [{item}]: {text}")


def write_notes(out_dir, notebook: str) -> Path:
    p = Path(out_dir) / "notes" / f"{notebook}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({k: NOTES[k] for k in sorted(NOTES)}, indent=1, sort_keys=True) + "\n")
    return p


# --------------------------------------------------------------------------- saving

def save_figure(fig, out_dir, stem: str) -> list[str]:
    """PNG + SVG without timestamps/versions; closes the figure; returns the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", metadata={"Software": None})
    fig.set_layout_engine("none")   # keep the layout computed for the PNG; saves a second layout pass
    fig.savefig(out / f"{stem}.svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [f"{stem}.png", f"{stem}.svg"]


def _fmt(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0:
            return "0"
        return f"{v:.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def save_table(out_dir, stem: str, csv_df: pd.DataFrame,
               md_sections: Sequence[tuple[str, pd.DataFrame]] | None = None,
               title: str = "", notes: Sequence[str] = ()) -> list[str]:
    """``<stem>.csv`` (all rows, machine-readable) and ``<stem>.md`` (headed sections, readable)."""
    if csv_df.empty:
        raise EmptySelection(f"table {stem} would be empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_df.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g", lineterminator="\n")
    parts = [f"# {title}\n"] if title else []
    for heading, df in (md_sections or [("", csv_df)]):
        if heading:
            parts.append(f"## {heading}\n")
        parts.append(markdown_table(df))
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    (out / f"{stem}.md").write_text("\n".join(parts))
    return [f"{stem}.csv", f"{stem}.md"]


# --------------------------------------------------------------------------- curves

def level_axis(ax, levels: Sequence[float], show_labels: bool = True) -> None:
    ax.set_xticks(range(len(levels)))
    rot = 45 if len(levels) > 6 else 0
    ax.set_xticklabels([pct(lv) for lv in levels] if show_labels else [], rotation=rot,
                       ha="right" if rot else "center")
    ax.set_xlim(-0.4, len(levels) - 0.6)


def draw_curve(ax, x, d: pd.DataFrame, kind: str, method: str, scale: float, label: str | None = None):
    ls, marker = METHOD_STYLES.get(method, ("-", "o"))
    color = kind_color(kind)
    m = d["mean"].to_numpy(float) * scale
    s = d["std"].to_numpy(float) * scale
    (line,) = ax.plot(x, m, ls=ls, marker=marker, ms=4, lw=1.5, color=color, label=label)
    if np.any(s > 0):
        ax.fill_between(x, m - s, m + s, color=color, alpha=0.18, lw=0)
    return line


def curve_grid(cur: pd.DataFrame, rows: Sequence[dict], cols: Sequence[dict], series: Sequence[dict],
               title: str, tier: str, item: str = "", source: str | None = None,
               panel_size: tuple[float, float] = (3.4, 2.6)):
    """A grid of metric-vs-sparsity panels.

    Each panel is ``{**row, **col}``: it must give ``task``, ``regime`` and ``metric`` (``fraction``
    defaults to 1, ``method`` may come from the panel or the series). ``series`` entries give ``kind``
    and optionally ``method`` and ``label``. Each curve is the mean over seeds with a +-1 std band; the
    dense model is the 0 % point. Raises EmptySelection (naming the file) when a panel would be empty.
    """
    source = source or cur.attrs.get("source", "curves")
    data = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            p = {**r, **c}
            frac = p.get("fraction", 1.0)
            for k, s in enumerate(series):
                method = s.get("method", p.get("method"))
                d = curve(cur, s["kind"], method, p["task"], p["regime"], frac, p["metric"])
                if len(d):
                    data[(i, j, k)] = d
                elif item:
                    note(item, f"no {p['metric']} for {s['kind']}-{method} on {p['task']} "
                               f"({p['regime']}, {fraction_label(frac)}) in {source}")
            if not any((i, j, k) in data for k in range(len(series))):
                raise EmptySelection(
                    f"{source}: no rows for regime={p['regime']}, metric={p['metric']}, task={p['task']}, "
                    f"fraction={frac}, series={[s['kind'] + '-' + str(s.get('method', p.get('method'))) for s in series]}")
    levels = sorted({float(lv) for d in data.values() for lv in d.level})
    pos = {lv: n for n, lv in enumerate(levels)}
    w, h = panel_size
    width = max(w * len(cols) + 0.8, 7.2)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(width, h * len(rows) + 1.4),
                             squeeze=False, layout="constrained")
    handles = {}
    n_seeds = sorted({int(n) for d in data.values() for n in d.n})
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            p = {**r, **c}
            scale = 100.0 if p["metric"] in PERCENT_METRICS else 1.0
            ax = axes[i][j]
            for k, s in enumerate(series):
                d = data.get((i, j, k))
                if d is None:
                    continue
                method = s.get("method", p.get("method"))
                label = s.get("label") or series_label(s["kind"], method)
                # dodge series sideways a little so that coinciding curves stay visible
                dx = (k - (len(series) - 1) / 2) * min(0.05, 0.3 / max(len(series), 1))
                line = draw_curve(ax, [pos[lv] + dx for lv in d.level], d, s["kind"], method, scale, label)
                handles.setdefault(label, line)
            level_axis(ax, levels)
            if i == len(rows) - 1:
                ax.set_xlabel("sparsity (%)")
            if "metric" in r:           # one metric per row: label the row once
                if j == 0:
                    ax.set_ylabel(r.get("label") or
                                  f"{METRIC_LABELS[r['metric']]}\n{REGIME_LABELS.get(r['regime'], r['regime'])}")
            else:                       # metric per column: every panel carries its unit
                ax.set_ylabel((f"{r['label']}\n" if j == 0 and r.get("label") else "") + METRIC_LABELS[p["metric"]])
            if i == 0:
                ax.set_title(c.get("title") or _col_title(p))
    if n_seeds == [1]:
        stats = "one seed per point (no std band)"
    else:
        stats = f"line = mean, band = ±1 std over {'/'.join(str(n) for n in n_seeds)} seeds"
    dense = "; 0 % = dense model" if any(0.0 in set(d.level) for d in data.values()) else ""
    ckpts = sorted({str(c) for d in data.values() if "checkpoint" in d for c in d.checkpoint})
    stats += f"; checkpoint: {'/'.join(ckpts)}" if ckpts else ""
    fig.suptitle(wrap(f"{title}\nours, tier: {tier}; {stats}{dense}", width), fontsize=10)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=max(1, min(len(handles), int(width // 3.6))), frameon=False)
    return fig


def _visible_len(word: str) -> int:
    """Length of a word as drawn: mathtext commands, braces and $ take no room."""
    return len(re.sub(r"\\[a-zA-Z]+|[${}^_]", "", word))


def wrap(text: str, width_in: float) -> str:
    """Wrap each line of a title to the figure width (about 12.5 characters per inch at 10 pt)."""
    n = max(30, int(width_in * 12.5))
    out = []
    for line in text.split("\n"):
        cur, size = [], 0
        for word in line.split(" "):
            w = _visible_len(word)
            if cur and size + 1 + w > n:
                out.append(" ".join(cur))
                cur, size = [], 0
            cur.append(word)
            size += w + (1 if size else 0)
        out.append(" ".join(cur))
    return "\n".join(out)


def _col_title(c: dict) -> str:
    parts = [task_label(c["task"])]
    if "method" in c:
        parts.append(method_label(c["method"]))
    if not math.isclose(c.get("fraction", 1.0), 1.0):
        parts.append(fraction_label(c["fraction"]))
    return ", ".join(parts)


def tasks_for(cur: pd.DataFrame, pairs: Sequence[tuple[str, str]], regimes: Sequence[str],
              fraction: float = 1.0) -> list[str]:
    """Tasks on which, for every regime, at least one (kind, method) pair has ticket rows."""
    keys = set(pairs)
    sel = cur[cur.regime.isin(regimes) & np.isclose(cur.fraction, fraction)]
    found: dict[str, set] = {}
    for k, m, t, r in zip(sel.kind, sel.method, sel.task, sel.regime):
        if (k, m) in keys:
            found.setdefault(t, set()).add(r)
    return task_order(t for t, rs in found.items() if rs >= set(regimes))


def require_tasks(tasks: list[str], source: str, what: str) -> list[str]:
    if not tasks:
        raise EmptySelection(f"{source}: no rows for {what}")
    return tasks


# --------------------------------------------------------------------------- loss landscapes

def landscape_panel(ax, alphas, betas, loss, traj, explained, title: str, n_levels: int = 9):
    """Loss contours on the trajectory plane (Li et al. 2018) with the training trajectory."""
    A, B = np.meshgrid(alphas, betas)
    lo, hi = float(np.nanmin(loss)), float(np.nanmax(loss))
    levels = np.linspace(lo, hi, n_levels + 2)[1:-1] if hi > lo else None
    cf = ax.contourf(A, B, loss, levels=np.linspace(lo, hi, 11) if hi > lo else 1, cmap="Greys", alpha=0.45)
    if levels is not None:
        cs = ax.contour(A, B, loss, levels=levels, colors="#303030", linewidths=0.7)
        ax.clabel(cs, levels=levels[::2], fontsize=6, fmt="%.3f", inline=True, inline_spacing=2)
    traj = np.asarray(traj)
    ax.plot(traj[:, 0], traj[:, 1], color="#D55E00", lw=1.4, marker=".", ms=5, label="trajectory")
    ax.plot(traj[0, 0], traj[0, 1], "o", color="#D55E00", mfc="white", ms=6, label="start (pretrained ticket)")
    ax.plot(traj[-1, 0], traj[-1, 1], "*", color="#D55E00", ms=10, label="end (fine-tuned)")
    ax.set_xlabel(f"direction 1 ({100 * explained[0]:.1f} % var.)")
    ax.set_ylabel(f"direction 2 ({100 * explained[1]:.1f} % var.)")
    ax.set_title(title)
    ax.grid(False)
    ax.ticklabel_format(style="sci", scilimits=(-2, 3), useMathText=True)
    return cf


_SEED_RE = re.compile(r"seed(\d+)$")


def run_seed(run: str) -> int:
    m = _SEED_RE.search(run)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------- kernel maps

def block_of(param: str) -> str:
    head = param.split(".")[0]
    return head if head.startswith("layer") else "stem"


def block_canvas(maps: Sequence[np.ndarray], max_h: int = 256, max_w: int = 768,
                 gap: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """Kernel maps [out, in] side by side (top-aligned, NaN between); block-averaged when large.

    Returns the image and the unpooled (height, width) in channels, for ``imshow(extent=...)``.
    A cell's value is the fraction of completely pruned kernels it covers (0/1 when not averaged).
    """
    h = max(m.shape[0] for m in maps)
    w = sum(m.shape[1] for m in maps) + gap * (len(maps) - 1)
    canvas = np.full((h, w), np.nan)
    x = 0
    for m in maps:
        canvas[: m.shape[0], x: x + m.shape[1]] = m.astype(float)
        x += m.shape[1] + gap
    f = max(1, math.ceil(h / max_h), math.ceil(w / max_w))
    if f > 1:
        H, W = math.ceil(h / f) * f, math.ceil(w / f) * f
        pad = np.full((H, W), np.nan)
        pad[:h, :w] = canvas
        blocks = pad.reshape(H // f, f, W // f, f)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                canvas = np.nanmean(blocks, axis=(1, 3))
    return canvas, (h, w)


def mix(c1: str, c2: str) -> str:
    a, b = np.array(mcolors.to_rgb(c1)), np.array(mcolors.to_rgb(c2))
    return mcolors.to_hex((a + b) / 2)


# --------------------------------------------------------------------------- plain-text labels (tables)

PLAIN_KIND = {"standard": "θ_STD", "fast_adversarial": "θ_FAT", "pgd_adversarial": "θ_AT",
              "random_smoothing": "θ_RS"}
PLAIN_METHOD = {"dense": "dense", "imp": "IMP m^ST", "a_imp": "A-IMP upstream m^AT", "a_imp_ds": "A-IMP downstream",
                "omp": "OMP m^OMP", "random": "random m^RP", "lmp": "LMP", "omp_row": "OMP row-wise",
                "omp_kernel": "OMP kernel-wise", "omp_channel": "OMP channel-wise"}


def plain_ticket(kind: str, method: str) -> str:
    return f"{PLAIN_KIND.get(kind, kind)} + {PLAIN_METHOD.get(method, method)}"


def ours_label(tier: str) -> str:
    return f"ours (tier {tier})"


def fixed_grid(nrows: int, ncols: int, panel_w: float, panel_h: float, left: float = 1.0, right: float = 0.25,
               top: float = 1.0, bottom: float = 0.95, wgap: float = 0.75, hgap: float = 0.8):
    """A uniform grid with fixed margins in inches (much faster than constrained layout for many panels)."""
    width = left + right + ncols * panel_w + (ncols - 1) * wgap
    height = top + bottom + nrows * panel_h + (nrows - 1) * hgap
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wgap / panel_w, hspace=hgap / panel_h)
    return fig, axes


def fixed_suptitle(fig, text: str, fontsize: float = 10, panel_head: float = 0.45) -> None:
    """Suptitle for a :func:`fixed_grid` figure: wrapped to the width, top margin grown to fit it."""
    width, height = fig.get_size_inches()
    wrapped = wrap(text, width)
    n = wrapped.count("\n") + 1
    fig.suptitle(wrapped, fontsize=fontsize, y=1 - 0.06 / height, va="top")
    top_in = 0.1 + n * fontsize * 1.25 / 72 + panel_head
    fig.subplots_adjust(top=1 - top_in / height)


def compact(n: int) -> str:
    """12345 -> '12.3k', 8650752 -> '8.65M' (titles of small panels)."""
    if n >= 1_000_000:
        return f"{n / 1e6:.3g}M"
    if n >= 10_000:
        return f"{n / 1e3:.3g}k"
    return str(n)
