"""The package's layering, read from its imports (issue 28; docs/ARCHITECTURE.md "Layers").

Every import of ``repro`` code, at module level or inside a function, goes to the same layer or one below;
no two modules import each other, directly or around a circle; no stage imports another stage (stages share
``repro.stages.common``, the runner, and everything else lives below them).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "repro"

#: layer of each module, by dotted prefix (the longest matching prefix wins); 0 is the bottom
LAYERS = {
    "repro": 0, "repro.base": 0,
    "repro.config": 1, "repro.tiers": 1,
    "repro.models": 2, "repro.data": 2,
    "repro.weights": 3, "repro.tickets": 3, "repro.attacks": 3,
    "repro.metrics": 4, "repro.sanity": 4, "repro.plausibility": 4, "repro.landscape": 4, "repro.fid": 4,
    "repro.training": 5,
    "repro.pretraining": 6, "repro.plan": 6, "repro.verdicts": 6, "repro.claims": 6, "repro.segmentation": 6,
    "repro.registries": 6, "repro.pipeline": 6,
    "repro.stages": 7,
    "repro.launch": 8, "repro.gpucheck": 8,
}
NAMES = {0: "base", 1: "config", 2: "models/data", 3: "weights/tickets/attacks", 4: "metrics", 5: "training",
         6: "paper logic", 7: "stages", 8: "launchers"}


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def layer(mod: str) -> int:
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len)
    return LAYERS[best]


def imports(mods: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of repro code; ``from pkg import name`` counts as an
    import of ``pkg.name`` when that is a module, else of ``pkg``."""
    edges = []
    for name, f in mods.items():
        is_pkg = f.name == "__init__.py"
        pkg = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            else:
                continue
            for t in targets:
                if t == "repro" or t.startswith("repro."):
                    while t not in mods and "." in t:
                        t = t.rpartition(".")[0]
                    if t != name:
                        edges.append((name, t, node.lineno))
    return edges


MODS = modules()
EDGES = imports(MODS)


def test_every_module_has_a_layer():
    assert all(layer(m) in NAMES for m in MODS)


def test_no_import_goes_up_a_layer():
    up = [f"{a} ({NAMES[layer(a)]}) imports {b} ({NAMES[layer(b)]}) at line {n}"
          for a, b, n in EDGES if layer(b) > layer(a)]
    assert not up, "\n".join(up)


def test_no_circles():
    graph: dict[str, set[str]] = {m: set() for m in MODS}
    for a, b, _ in EDGES:
        graph[a].add(b)
    # Tarjan's strongly connected components: a circle is a component of more than one module
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not comps, f"import circles: {comps}"


def test_no_stage_imports_another_stage():
    bad = [f"{a} imports {b} (line {n})" for a, b, n in EDGES
           if a.startswith("repro.stages.") and b.startswith("repro.stages.") and b != "repro.stages.common"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODS if m.startswith("repro.")))
def test_no_module_of_the_package_is_over_450_lines(module):
    n = len(MODS[module].read_text().splitlines())
    assert n <= 450, f"{MODS[module].relative_to(ROOT)} has {n} lines; split it by job"


def test_the_checker_sees_what_it_must_catch(tmp_path):
    """The checker on a made-up package: a function-level upward import, a relative circle and a stage importing a
    stage are all read as edges the tests above refuse."""
    files = {
        "repro.config.params": "def f():\n    from ..training import train\n",
        "repro.training": "",
        "repro.data.a": "from .b import x\n",
        "repro.data.b": "from . import a\nx = 1\n",
        "repro.stages.transfer": "from . import evaluate\n",
        "repro.stages.evaluate": "",
    }
    mods = {}
    for name, text in files.items():
        f = tmp_path / (name.replace(".", "_") + ("__init__.py" if name == "repro.training" else ".py"))
        if name == "repro.training":
            f = tmp_path / "training" / "__init__.py"
            f.parent.mkdir()
        f.write_text(text)
        mods[name] = f
    edges = {(a, b) for a, b, _ in imports(mods)}
    assert ("repro.config.params", "repro.training") in edges and layer("repro.training") > layer("repro.config.params")
    assert {("repro.data.a", "repro.data.b"), ("repro.data.b", "repro.data.a")} <= edges
    assert ("repro.stages.transfer", "repro.stages.evaluate") in edges
