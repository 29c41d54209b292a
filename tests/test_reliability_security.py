"""Reliability 6: security. Checkpoints load weights-only (pickle only through the documented
restricted unpicklers), nothing runs a shell, and no params.yaml value reaches the shell command
DVC runs (an injection attempt through a foreach item is refused before any command runs).

The sha256 verification of every published-checkpoint download (before use, nothing written on a
mismatch, truncated files) is tested in tests/test_weights.py.
"""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import reliability_ws as W
from repro.base.io import CheckpointError, load_torch

ROOT = W.ROOT
SOURCES = sorted([*ROOT.glob("repro/**/*.py"), *ROOT.glob("paper_figures/*.py")])
#: functions allowed to unpickle, each through an Unpickler whose find_class is an allowlist
RESTRICTED_UNPICKLERS = {"repro/data/public/common.py"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    # a method of an expression's value (``build().eval()``) is not the builtin of the same name
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")
    return ".".join(reversed(parts))


@pytest.fixture(scope="module")
def trees():
    return {str(f.relative_to(ROOT)): ast.parse(f.read_text(), filename=str(f)) for f in SOURCES}


def test_every_torch_load_is_weights_only(trees):
    found = []
    for rel, tree in trees.items():
        for call in _calls(tree):
            if _name(call.func) in ("torch.load", "load") and any(k.arg == "weights_only" for k in call.keywords) \
                    or _name(call.func) == "torch.load":
                kw = {k.arg: k.value for k in call.keywords}
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, \
                    f"{rel}:{call.lineno}: torch.load without weights_only=True"
                found.append(rel)
    assert "repro/base/io.py" in found and "repro/weights/safeload.py" in found


def test_pickle_only_through_restricted_unpicklers(trees):
    for rel, tree in trees.items():
        for call in _calls(tree):
            name = _name(call.func)
            assert name not in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "marshal.loads",
                                "joblib.load", "torch.serialization.load"), f"{rel}:{call.lineno}: {name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(_name(b).endswith("Unpickler") for b in node.bases):
                assert rel in RESTRICTED_UNPICKLERS, f"{rel}: unpickler {node.name}"
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                assert "find_class" in methods, f"{rel}: {node.name} must restrict find_class"


def test_np_load_never_allows_pickle(trees):
    for rel, tree in trees.items():
        for call in _calls(tree):
            if _name(call.func) in ("np.load", "numpy.load"):
                kw = {k.arg: k.value for k in call.keywords}
                assert "allow_pickle" not in kw or getattr(kw["allow_pickle"], "value", None) is False, \
                    f"{rel}:{call.lineno}: np.load with allow_pickle"


def test_no_shell_and_no_eval(trees):
    for rel, tree in trees.items():
        for call in _calls(tree):
            name = _name(call.func)
            assert name not in ("os.system", "os.popen", "eval", "exec", "subprocess.getoutput",
                                "subprocess.getstatusoutput", "os.execl", "os.spawnl"), f"{rel}:{call.lineno}: {name}"
            for k in call.keywords:
                assert not (k.arg == "shell" and getattr(k.value, "value", False) is not False), \
                    f"{rel}:{call.lineno}: shell=True"
            if name.startswith("subprocess.") and call.args:
                assert not isinstance(call.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)), \
                    f"{rel}:{call.lineno}: a command line string (use an argument list)"


def test_no_params_value_is_interpolated_into_a_dvc_command():
    """DVC runs `cmd` through a shell: `${...}` there would put params.yaml values on a command line."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in stages.items():
        cmd = (st.get("do") or st)["cmd"]
        assert "${" not in cmd and "$" not in cmd.replace("$$", ""), f"{name}: {cmd}"


def test_weights_only_load_refuses_code_and_never_runs_it(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    f = tmp_path / "evil.pt"
    with open(f, "wb") as fh:
        pickle.dump({"w": Evil()}, fh)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_torch(f)
    assert not marker.exists()


def test_injection_through_a_foreach_item_never_reaches_a_shell(tmp_path):
    """params.yaml lists a pretraining kind carrying shell syntax; `dvc repro` of that stage runs the
    stage module, which refuses the value: the injected command never runs."""
    evil = "standard;touch pwned"
    p = W.smoke_params(pretrain={"kinds": ["standard", evil]},
                       experiments={"rel": {"pairs": [["standard", "omp"]], "regimes": ["standard"]}})
    repo = W.git_dvc_repo(tmp_path / "repo", p)
    (repo / "runs" / "data").mkdir(parents=True)  # the stage's dependency exists, so DVC runs its command
    (repo / "runs" / "data" / "placeholder").write_text("x")
    dvc = str(Path(sys.executable).parent / "dvc")
    r = subprocess.run([dvc, "repro", "--single-item", f"pretrain@{evil}"], cwd=repo, capture_output=True, text=True,
                       env=W.cmd_env(), timeout=600)
    assert r.returncode != 0
    assert not (repo / "pwned").exists(), "a params value reached the shell"
    assert "pretrain.kinds" in r.stderr + r.stdout  # the stage's own one-line validation error
