"""Premises: what must hold in a run for a claim to be testable there at all.

A claim whose premise fails is ``not testable here``: the run does not have the setting the paper's
sentence is about, so neither a win nor a loss would bear on it (its numbers are still shown). Each
premise is a stated rule with a fixed bound taken from the papers, never tuned to an outcome:

* :func:`comparable_backbones`: the compared pretrained models are as close in source accuracy as the
  papers' own. The least favorable pair either paper uses is DW's θ_AT (MadryLab's ResNet-50, L∞
  ε = 8/255, DW footnote 5: 54.53 % ImageNet top-1) against torchvision's standard ResNet-50
  (IMAGENET1K_V1: 76.13 %), a ratio of 0.716. A comparison of two pretrainings whose source accuracies
  (``runs/pretrain/<kind>/metrics.json``: ``source_sa``) are further apart (lower / higher below
  :data:`SOURCE_RATIO`) compares a backbone the papers never had: not testable here. A published
  checkpoint without a measured source accuracy is one of the papers' models and passes.
* :func:`large_model`: RT limits its OoD sentence to "large models (e.g., ResNet50)": the run's
  ``model.arch`` must be a ResNet-50 (:data:`LARGE_ARCHS`).
* :func:`matches_at_lowest_level`: comparing extreme double-win sparsities needs some pretraining's IMP
  ticket to be double-win (the papers' matching rule) at the lowest sweep level on some task; if none is,
  every extreme sparsity is 0 and their order says nothing about the pretrainings.
* :func:`sweep_reaches`: a sentence about sparsities beyond a level (DW: "after 95.60 % sparsity") needs
  sweep levels on both sides of it.
* :func:`independent_pretrainings`: the papers' pretrained models were trained independently (three
  published ImageNet checkpoints); the pipeline pretrains every kind from the initialization of ``seed``,
  so two kinds pretrained here share it and their masks overlap for that reason alone. Mask-overlap
  claims need at most one of the compared kinds pretrained here (the others published).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .evidence import Evidence

#: DW's θ_AT (MadryLab ResNet-50 L∞ ε 8/255, 54.53 %) over torchvision's ResNet-50 (76.13 %), ImageNet top-1
SOURCE_RATIO = 54.53 / 76.13
LARGE_ARCHS = ("resnet50", "cifar_resnet50")


@dataclass(frozen=True)
class Check:
    holds: bool | None    # None: not checkable from what the run records (noted, the claim is decided)
    detail: str

    def as_dict(self, name: str) -> dict:
        return {"premise": name, "holds": self.holds, "detail": self.detail}


@dataclass(frozen=True)
class Premise:
    name: str
    text: str
    check: Callable[[Evidence], Check]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def comparable_backbones(*pairs: tuple[str, str]) -> Premise:
    def check(ev: Evidence) -> Check:
        sa = ev.context.get("source_sa") or {}
        published = set(ev.context.get("published") or ())
        bad, unknown, seen = [], [], []
        for k1, k2 in pairs:
            if k1 not in sa or k2 not in sa:
                missing = [k for k in (k1, k2) if k not in sa and k not in published]
                if missing:
                    unknown += missing
                continue
            lo, hi = sorted((sa[k1], sa[k2]))
            ratio = lo / hi if hi > 0 else 0.0
            seen.append(f"{k1} {_pct(sa[k1])} vs {k2} {_pct(sa[k2])} (ratio {ratio:.2f})")
            if ratio < SOURCE_RATIO:
                bad.append(seen[-1])
        if bad:
            return Check(False, "source accuracy " + "; ".join(bad) + f", below the papers' {SOURCE_RATIO:.3f}")
        if unknown:
            return Check(None, "source accuracy of " + ", ".join(sorted(set(unknown))) + " not recorded")
        return Check(True, "source accuracy " + "; ".join(seen) if seen else "published checkpoints")
    names = ", ".join(f"{a}/{b}" for a, b in pairs)
    return Premise("comparable backbones",
                   f"source accuracies of {names} within the papers' ratio ({SOURCE_RATIO:.3f}, DW's θ_AT 54.53 % over "
                   "ResNet-50's 76.13 %)", check)


def large_model() -> Premise:
    def check(ev: Evidence) -> Check:
        arch = (ev.context.get("model") or {}).get("arch")
        if arch is None:
            return Check(None, "model not recorded")
        return Check(arch in LARGE_ARCHS, f"model.arch {arch}" + ("" if arch in LARGE_ARCHS else ", not a ResNet-50"))
    return Premise("large model", "a ResNet-50 (RT: 'large models (e.g., ResNet50)')", check)


def matches_at_lowest_level(kinds, method: str = "imp") -> Premise:
    def check(ev: Evidence) -> Check:
        verdicts = [v for v in ev.double_win(1.0) if v["kind"] in kinds and v["method"] == method and v["levels"]]
        if not verdicts:
            return Check(None, "no double-win verdicts")
        low = [f"{v['kind']} on {v['task']}" for v in verdicts if v["levels"][0]["double_win"]]
        lv = min(v["levels"][0]["level"] for v in verdicts)
        if not low:
            return Check(False, f"no {method} ticket of {', '.join(kinds)} is double-win at the lowest level "
                                f"({_pct(lv)}) on any task")
        return Check(True, "double-win at the lowest level: " + ", ".join(low))
    return Premise("a ticket matches at the lowest level",
                   "some pretraining's IMP ticket is double-win at the lowest sweep level", check)


def sweep_reaches(level: float, method: str = "imp") -> Premise:
    def check(ev: Evidence) -> Check:
        lvs = sorted({k[5] for k in ev.groups if k[1] == method and k[5] > 0})
        if not lvs:
            return Check(None, f"no {method} tickets")
        ok = lvs[-1] > level and lvs[0] <= level
        return Check(ok, f"sweep levels {', '.join(_pct(x) for x in lvs)}"
                     + ("" if ok else f"; none on both sides of {_pct(level)}"))
    return Premise(f"sparsity beyond {_pct(level)}", f"sweep levels at or below and above {_pct(level)}", check)


def independent_pretrainings(kinds) -> Premise:
    def check(ev: Evidence) -> Check:
        published = set(ev.context.get("published") or ())
        if "published" not in ev.context:
            return Check(None, "pretraining sources not recorded")
        here = [k for k in kinds if k not in published]
        return Check(len(here) <= 1, ("pretrained here from one shared initialization: " + ", ".join(here))
                     if len(here) > 1 else "independently trained")
    return Premise("independent pretrainings", "at most one compared kind pretrained here (shared initialization)",
                   check)
