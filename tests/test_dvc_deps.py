"""dvc.yaml's code dependencies are what each stage imports (issue 28): a code change reruns exactly the stages
whose code it touches, and DVC never calls a result up to date that came from other code.

For every stage run as ``python -m repro.stages.<name>``, the repro modules it imports (module-level and
function-level, transitively, with the package ``__init__``s that importing them runs) must be its code deps, and
its code deps nothing else: a package of ``repro/`` is listed as its folder, except ``repro/stages`` and
``repro/pipeline``, whose modules are listed one by one (one stage's module changing must not rerun the others).
``python tests/test_dvc_deps.py`` prints each stage's list.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_layers import EDGES, MODS, ROOT  # noqa: E402

FILE_BY_FILE = ("stages", "pipeline")
GRAPH: dict[str, set[str]] = {}
for a, b, _ in EDGES:
    GRAPH.setdefault(a, set()).add(b)


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or m not in MODS:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module runs its packages' __init__
        todo += sorted(GRAPH.get(m, ()))
    return seen


def unit(module: str) -> str | None:
    f = MODS[module]
    if not f.read_text().strip():
        return None  # an empty __init__.py
    rel = f.relative_to(ROOT).parts
    if len(rel) == 2 or rel[1] in FILE_BY_FILE:
        return "/".join(rel)
    return "/".join(rel[:2])


def code_deps(module: str) -> list[str]:
    return sorted({u for m in closure(module) if (u := unit(m)) is not None})


def stages() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for name, st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        st = st.get("do", st)
        m = re.search(r"python -m (repro\.stages\.\w+)", st["cmd"])
        if m:
            out[name] = (m.group(1), [d for d in st.get("deps", []) if str(d).startswith("repro")])
    return out


@pytest.mark.parametrize("stage", sorted(stages()))
def test_code_deps_are_what_the_stage_imports(stage):
    module, listed = stages()[stage]
    want = code_deps(module)
    missing, extra = sorted(set(want) - set(listed)), sorted(set(listed) - set(want))
    assert not missing and not extra, (f"dvc.yaml stage {stage!r}: missing code deps {missing}, not imported {extra}; "
                                       f"its code deps are {want}")


def test_every_declared_param_is_in_params_yaml():
    """DVC refuses a stage whose declared param is absent from params.yaml (a schema default is not enough)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        for key in st.get("do", st).get("params", []):
            node = params
            for part in str(key).split("."):
                assert isinstance(node, dict) and part in node, f"dvc.yaml stage {name!r} declares {key!r}, absent from params.yaml"
                node = node[part]


def test_every_code_dep_exists():
    for stage, (_, listed) in stages().items():
        for d in listed:
            assert (ROOT / d).exists(), f"dvc.yaml stage {stage!r} lists {d!r}, which does not exist"


if __name__ == "__main__":
    for name, (module, _) in stages().items():
        print(f"{name}: {code_deps(module)}")
