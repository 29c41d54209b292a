"""Scale tiers: ``python -m repro.tiers use small|paper`` merges ``tiers/<tier>.yaml`` into params.yaml.

The embedded default is the committed params.yaml (``git checkout params.yaml``
returns to it). Merging is recursive for mappings; lists and scalars replace.
The merged file is checked against the schema's keys and types; dataset names
are checked by the stages (the real loaders are registered by the data layer).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .io import save_text

TIERS_DIR = Path("tiers")


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def apply(tier: str, params: Path = Path("params.yaml")) -> dict:
    overlay = TIERS_DIR / f"{tier}.yaml"
    if not overlay.is_file():
        allowed = sorted(p.stem for p in TIERS_DIR.glob("*.yaml"))
        raise SystemExit(f"unknown tier {tier!r}; allowed: default (the committed params.yaml), {', '.join(allowed)}")
    merged = merge(yaml.safe_load(params.read_text()) or {}, yaml.safe_load(overlay.read_text()) or {})
    save_text(yaml.safe_dump(merged, sort_keys=False), params)
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    use = sub.add_parser("use", help="merge tiers/<tier>.yaml into params.yaml")
    use.add_argument("tier")
    a = ap.parse_args(argv)
    apply(a.tier)
    print(f"params.yaml now uses tier {a.tier!r}; run `dvc repro` (or `git checkout params.yaml` to go back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
