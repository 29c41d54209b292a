"""What a verdict is a verdict on: the run's tier, data, model and scale (``scope`` of ``metrics/claims.json``,
the claims stage's log line and the report's first line), and the context the premises read."""
from __future__ import annotations

from ..config import Params
from ..config.params import PAPERS


def _pct(x: float) -> str:
    return f"{100 * x:.2f}".rstrip("0").rstrip(".") + " %"


def build_scope(p: Params, rows: list[dict]) -> dict:
    """The scope of this run's verdicts, with a one-line ``summary``."""
    d = p.data
    synthetic = d.source.startswith("synth")
    seeds = {}
    for paper in PAPERS:
        ss = {tuple(e.seeds or p.transfer.seeds) for name, e in p.experiments.items()
              if name.startswith(f"{paper}_") and e.pairs}
        seeds[paper.upper()] = sorted({len(s) for s in ss})
    n_test = sorted({r["n_test"] for r in rows if isinstance(r.get("n_test"), int)})
    n_robust = sorted({r["n_robust"] for r in rows if isinstance(r.get("n_robust"), int)})
    levels = list(p.sweep.sparsities)
    m = p.model
    model = {"arch": m.arch, "width": getattr(m, "width", None), "depths": list(getattr(m, "depths", []) or [])}

    def span(v):
        return "?" if not v else (str(v[0]) if len(v) == 1 else f"{v[0]}–{v[-1]}")

    summary = (f"{'synthetic' if synthetic else 'real'} data: {d.source} → {len(d.downstream)} task(s) at "
               f"{d.image_size} px; {m.arch}" + (f" width {model['width']}" if model["width"] else "")
               + "; seeds " + " / ".join(f"{k} {span(v)}" for k, v in seeds.items())
               + f"; {span(n_test)} test / {span(n_robust)} attacked images"
               + (f"; sparsity ≤ {_pct(max(levels))}" if levels else ""))
    return {"tier": p.tier, "synthetic": synthetic, "source": d.source, "downstream": list(d.downstream),
            "image_size": d.image_size, "model": model, "seeds": seeds, "n_test": n_test, "n_robust": n_robust,
            "sparsity_levels": levels, "runs": len(rows), "summary": summary}
