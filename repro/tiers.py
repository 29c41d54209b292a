"""Scale tiers: ``python -m repro.tiers use small|paper`` merges ``tiers/<tier>.yaml`` into params.yaml.

The embedded default is the committed params.yaml (``git checkout params.yaml``
returns to it). Merging is recursive for mappings; lists and scalars replace.
Several tiers merge in order: ``use small trial`` is the small tier with the
``trial`` overlay's reduced grid (one sparsity, three IMP rounds, one seed), a
check of a tier's whole path on a CPU rather than a run of its experiments.
``--fraction f`` runs a tier at a fraction of its data and epochs: every
training block's ``epochs`` (and lr milestones) is scaled by ``f`` (at least one
epoch) and ``data.fraction: f`` keeps the first ``f`` of every class of the
public datasets (and the held-out image counts of ``transfer.validation``, ``pretrain.early_stopping`` and
``pretrain.eps_select`` shrink with it).
The merged file is checked against the schema's keys and types; dataset names
are checked by the stages (the real loaders are registered by the data layer).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .base.io import save_text

TIERS_DIR = Path("tiers")


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


#: the blocks that hold out training images (counts ``n``, ``robust_images``), scaled with ``--fraction``
HELD_OUT = (("transfer", "validation"), ("pretrain", "early_stopping"), ("pretrain", "eps_select"))


def scale(cfg: dict, fraction: float) -> dict:
    """``cfg`` with every training block's epochs and milestones scaled by ``fraction`` (>= 1 epoch;
    >= 2 for adversarial transfer (``transfer.adversarial`` and the ``adversarial`` entries of its ``per_task``
    and named ``recipes``), whose Fig. 6 trajectory plane needs 3 weight snapshots)."""
    if not 0 < fraction <= 1:
        raise SystemExit(f"--fraction {fraction} is outside (0, 1]")
    out = _scale(cfg, fraction)
    tr = out.get("transfer", {})
    recipes = [*(tr.get("per_task") or {}).values(), *(tr.get("recipes") or {}).values()]
    for adv in [tr.get("adversarial", {}), *(r.get("adversarial") or {} for r in recipes)]:
        if isinstance(adv.get("epochs"), int):
            adv["epochs"] = max(2, adv["epochs"])
    counts = []
    for section, block in HELD_OUT:
        val = out.get(section, {}).get(block, {})
        counts += [(val, "n"), (val, "robust_images"), *((val["per_task"], t) for t in val.get("per_task") or {})]
    for d, k in counts:  # held-out image counts shrink with the (reduced) training split; a fraction of it stays
        if isinstance(d.get(k), int) and not isinstance(d[k], bool) and d[k] > 0:
            d[k] = max(1, round(d[k] * fraction))
    return out


def _scale(cfg, fraction: float):
    if isinstance(cfg, list):
        return [_scale(v, fraction) for v in cfg]
    if not isinstance(cfg, dict):
        return cfg
    out = {k: _scale(v, fraction) for k, v in cfg.items()}
    if isinstance(out.get("epochs"), int):
        epochs = max(1, round(out["epochs"] * fraction))
        out["epochs"] = epochs
        if out.get("milestones"):
            out["milestones"] = sorted({max(1, round(m * fraction)) for m in out["milestones"]} & set(range(1, epochs + 1)))
    return out


def apply(tier: str | list[str], params: Path = Path("params.yaml"), fraction: float = 1.0) -> dict:
    """Merge ``tiers/<t>.yaml`` for each named tier, in order, into ``params``; optionally scale it."""
    merged = combine(tier, params, fraction)
    save_text(yaml.safe_dump(merged, sort_keys=False), params)
    return merged


def combine(tier: str | list[str], params: Path = Path("params.yaml"), fraction: float = 1.0) -> dict:
    """What ``apply`` would write into ``params`` (``params`` itself is not changed); tier ``default``
    alone is ``params`` as it is."""
    names = [tier] if isinstance(tier, str) else list(tier)
    if names == ["default"] and fraction == 1:
        return yaml.safe_load(params.read_text()) or {}
    allowed = sorted(p.stem for p in TIERS_DIR.glob("*.yaml"))
    merged = yaml.safe_load(params.read_text()) or {}
    for name in names:
        overlay = TIERS_DIR / f"{name}.yaml"
        if not overlay.is_file():
            raise SystemExit(f"unknown tier {name!r}; allowed: default (the committed params.yaml), {', '.join(allowed)}")
        merged = merge(merged, yaml.safe_load(overlay.read_text()) or {})
    merged["tier"] = "+".join(names)
    if fraction != 1:
        merged = scale(merged, fraction)
        merged.setdefault("data", {})["fraction"] = fraction
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    use = sub.add_parser("use", help="merge tiers/<tier>.yaml (several: in order) into params.yaml")
    use.add_argument("tier", nargs="+")
    use.add_argument("--fraction", type=float, default=1.0,
                     help="run at this fraction of the data (per class) and of every epoch count")
    a = ap.parse_args(argv)
    apply(a.tier, fraction=a.fraction)
    at = f" at fraction {a.fraction}" if a.fraction != 1 else ""
    print(f"params.yaml now uses tier {'+'.join(a.tier)!r}{at}; run `dvc repro` (or `git checkout params.yaml` to go back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
