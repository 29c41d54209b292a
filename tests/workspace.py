"""Throwaway git + DVC workspaces for the sharing and scale-out tests.

``copy_project`` copies the project's source files (tracked and untracked-but-not-ignored, as
``git ls-files`` sees them, so the working tree under test is what gets copied, but never what the
pipeline writes: ``dvc.lock`` and dvc.yaml's outputs, which a checkout that ran ``make repro`` holds,
ignored, untracked or staged) into a temporary folder; ``init_repo`` makes that folder its own
git repository. Commands run with the test's own Python environment first on PATH (the stages call
``python -m repro.stages.*``), a git identity, and DVC analytics off.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
# Never copied, even when not ignored by git (e.g. in an unpacked source tarball).
SKIP = (".venv", ".venv-tools", ".git", ".dvc/cache", ".dvc/tmp", "runs", ".cache", ".pytest_cache", ".hypothesis")


#: the project's test-tools venv (`make tools`, requirements-tools.lock): moto_server, hadolint
TOOLS = Path(os.environ.get("REPRO_TOOLS") or ROOT / ".venv-tools" / "bin")


def tool(name: str) -> str | None:
    """Path of a test tool from the project's tools venv (never the system's), or None."""
    path = TOOLS / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def shared_folder(rel: str) -> Path:
    """A folder of the project's shared material (``shared/<rel>``: the papers' texts, reference notes), found as
    ``shared/`` beside the checkout or beside one of its parent folders. When it is missing the test is skipped,
    or fails under CI=true (CI must run every test)."""
    import pytest

    for parent in ROOT.parents:
        if (parent / "shared" / rel).is_dir():
            return parent / "shared" / rel
    msg = f"shared/{rel} is not beside this checkout ({ROOT}) or any folder above it"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(msg + "; CI=true: a missing input fails the run", pytrace=False)
    pytest.skip(msg)


def need_tool(name: str) -> str:
    """The tool's path; when it is missing, skip the test, or fail it under CI=true (CI must run every test)."""
    import pytest

    path = tool(name)
    if path is None:
        msg = f"{name} is not installed in {TOOLS} (run `make tools`)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(msg + "; CI=true: a missing test tool fails the run", pytrace=False)
        pytest.skip(msg)
    return path


def pipeline_outputs() -> tuple[list[str], list[str]]:
    """What dvc.yaml's stages write (outs, metrics, plots) and ``dvc.lock``: (paths, prefixes of templated paths,
    e.g. ``runs/tickets/s`` of a foreach stage's ``runs/tickets/s${item}``)."""
    import yaml

    paths, prefixes = ["dvc.lock"], []
    for stage in (yaml.safe_load((ROOT / "dvc.yaml").read_text()).get("stages") or {}).values():
        stage = stage.get("do", stage)
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key) or []:
                path = out if isinstance(out, str) else next(iter(out))
                if "${" in path:
                    prefixes.append(path.split("${")[0])
                else:
                    paths.append(path.rstrip("/"))
    return paths, prefixes


def project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        files = [f for f in listed.stdout.split("\0") if f]
    else:  # not a git checkout (e.g. a source tarball): everything but the skipped folders
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() or p.is_symlink()]
    outputs, prefixes = pipeline_outputs()

    def output(f: str) -> bool:  # git may hold dvc.lock (dvc stages it; DVC's workflow commits it), never an out
        return any(f == o or f.startswith(o + "/") for o in outputs) or any(f.startswith(p) for p in prefixes)

    return sorted(f for f in files
                  if not any(f == s or f.startswith(s + "/") for s in SKIP) and not output(f)
                  and "__pycache__" not in f and (ROOT / f).is_file())


def copy_project(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in project_files():
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dst / f)
    return dst


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e.update(PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}", PYTHONWARNINGS="ignore", DVC_NO_ANALYTICS="1",
             GIT_AUTHOR_NAME="repro-test", GIT_AUTHOR_EMAIL="repro-test@localhost",
             GIT_COMMITTER_NAME="repro-test", GIT_COMMITTER_EMAIL="repro-test@localhost")
    e.pop("VIRTUAL_ENV", None)
    e.update(extra)
    return e


def run(cwd: Path, *args, check: bool = True, timeout: float = 900, environ: dict | None = None):
    """Run a command in ``cwd``; on failure the assertion shows its whole output."""
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=environ or env())
    if check:
        assert r.returncode == 0, f"{' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def dvc(cwd: Path, *args, **kw):
    return run(cwd, DVC, *args, **kw)


def init_repo(path: Path, tier: str | None = None) -> Path:
    """git init + first commit of a copied project; ``tier`` merges tiers/<tier>.yaml first."""
    if tier:
        run(path, sys.executable, "-m", "repro.tiers", "use", tier)
    run(path, "git", "init", "-q", "-b", "main")
    if not (path / ".dvc").is_dir():
        dvc(path, "init", "-q")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-q", "-m", "project")
    return path


def commit_all(path: Path, msg: str) -> None:
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-q", "--allow-empty", "-m", msg)


def clone_lab(lab: Path, dst: Path) -> Path:
    """A private copy of a finished workspace (git history, DVC cache, outputs) to write into."""
    shutil.copytree(lab, dst, symlinks=True)
    return dst


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> content)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
