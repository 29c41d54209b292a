"""The Dockerfile installs exactly what CI installs, and its entry point runs `dvc repro`.

No container engine is needed: the Dockerfile is parsed; the install recipe it calls (`make venv`
with the image's paths) is expanded by make itself (`make -n`) and compared with CI's (`make test`
depends on `venv`); the entry point script is executed on the host. Independently of the Makefile,
every install is the lock file or an exact pin, and the environment CI built holds exactly the lock
(`pip freeze`). hadolint comes from the project's tools venv (`make tools`, requirements-tools.lock);
without it the test skips, or fails under CI=true.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workspace import need_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def of(kind: str) -> list[str]:
    return [a for k, a in instructions() if k == kind]


def env_vars() -> dict:
    env = {}
    for a in of("ENV"):
        for tok in shlex.split(a):
            k, _, v = tok.partition("=")
            env[k] = v
    return env


def make_venv_call() -> list[str]:
    calls = [c for r in of("RUN") for c in r.split("&&") if c.strip().startswith("make ")]
    assert len(calls) == 1, calls
    return shlex.split(calls[0])


def make_dry(*args: str, tmp: Path) -> list[str]:
    """The commands `make venv` would run in a fresh checkout (no venv yet)."""
    for f in ("Makefile", "requirements.lock", "requirements-tools.lock", "pyproject.toml"):
        shutil.copy(ROOT / f, tmp / f)
    # a clean make, not a sub-make of `make test` (which would print "make[1]: Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    r = subprocess.run(["make", "-n", *args], cwd=tmp, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]


def test_base_is_pinned_to_an_exact_python_311_tag():
    arg = next(a for a in of("ARG") if a.startswith("BASE="))
    base = arg.partition("=")[2]
    assert of("FROM") == ["${BASE}"]
    name, _, tag = base.partition(":")
    assert name in ("python", "docker.io/library/python") or name.startswith("nvidia/cuda"), base
    assert re.match(r"3\.11\.\d+-", tag) or "@sha256:" in base, f"{base}: not an exact Python 3.11 tag"


def ci_make_call() -> list[str]:
    """The `make ...` command of .ci/run (CI's entry point)."""
    calls = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip().startswith("make ")]
    assert len(calls) == 1, calls
    return shlex.split(calls[0])


def pip_installs(cmds: list[str], venv: str) -> list[list[str]]:
    """The arguments after `pip install` of every install into ``venv``."""
    head = f"{venv}/bin/python -m pip install"
    return [shlex.split(c[len(head):]) for c in cmds if c.startswith(head + " ")]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_image_installs_the_lock_file_with_ci_commands(tmp_path):
    call = make_venv_call()
    assert call[:2] == ["make", "venv"]
    over = dict(a.split("=", 1) for a in call[2:])
    venv = over["VENV"]
    # The files the recipe needs are in the image before `make venv` runs.
    copied = " ".join(of("COPY")[:1])
    for f in ("Makefile", "requirements.lock", "pyproject.toml"):
        assert f in copied, copied
    # What CI runs (.ci/run's make call, e.g. `make test`) starts with the image's recipe, paths aside:
    # the project venv of CI and of the image are built by the same commands.
    ci = make_dry(*ci_make_call()[1:], tmp=tmp_path)
    image = make_dry(*call[1:], tmp=tmp_path)
    assert [re.sub(r"\.venv(?=/| |$)", venv, c) for c in ci[:len(image)]] == image
    assert any(c.startswith(".venv/bin/pytest") or " .venv/bin/pytest" in c for c in ci[len(image):]), ci
    assert any("ipykernel install --sys-prefix --name python3" in c for c in image)  # papermill's kernel
    # Independently of the Makefile: every install into the venv is the lock file, an exact pin without
    # dependencies, the package itself without dependencies, or pip/setuptools themselves.
    installs = pip_installs(image, venv)
    assert ["--quiet", "-r", "requirements.lock"] in installs, installs
    extra_pins = []
    for args in installs:
        pkgs = [a for a in args if not a.startswith("-")]
        if args == ["--quiet", "-r", "requirements.lock"]:
            continue
        if "--upgrade" in args:
            assert {re.split(r"[<>=]", a)[0] for a in pkgs} <= {"pip", "setuptools"}, args
        elif "-e" in args:
            assert pkgs == ["."] and "--no-deps" in args, args
        else:
            assert "--no-deps" in args and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", a) for a in pkgs), args
            extra_pins += pkgs
    # ... and the environment CI built (the one running this test) holds exactly those packages.
    if Path(sys.prefix, ".installed").is_file():  # built by `make venv` (not some other environment)
        r = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                           text=True, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
        lock = {ln.strip() for ln in (ROOT / "requirements.lock").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")}
        got = {ln.strip() for ln in r.stdout.splitlines() if ln.strip()}
        assert got == lock | set(extra_pins), (sorted(got - lock - set(extra_pins)), sorted(lock - got))
    # No other package installs (an unpinned `pip install` would break "exactly the lock").
    assert not [r for r in of("RUN") if "pip install" in r or "pip3 install" in r]
    # That venv comes first on PATH, so `dvc` and `python` are the locked ones.
    assert env_vars()["PATH"].split(":")[0] == f"{venv}/bin"
    assert env_vars().get("VIRTUAL_ENV") == venv


def test_lock_pins_every_package_exactly():
    lines = [ln.strip() for ln in (ROOT / "requirements.lock").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    bad = [ln for ln in lines if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+!\-]+", ln)]
    assert not bad, bad
    names = {ln.split("==")[0].lower() for ln in lines}
    assert {"dvc", "dvc-s3", "torch", "papermill", "ipykernel", "submitit"} <= names


def test_entry_point_runs_the_given_command_default_dvc_repro(tmp_path):
    assert json.loads(of("CMD")[-1]) == ["dvc", "repro"]
    entry = json.loads(of("ENTRYPOINT")[-1])
    src = next(a.split()[-2] for a in of("COPY") if a.split()[-1] == entry[0])
    script = ROOT / src
    assert script.is_file() and os.access(script, os.X_OK), f"{src} must be an executable file"
    assert script.read_text().splitlines()[0] == "#!/bin/sh"
    assert script.read_text().rstrip().endswith('exec "$@"')
    # Run it as the container would: the command resolves on PATH (the image's venv first) and
    # a user id without a writable HOME gets one.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HOME="/nonexistent")
    r = subprocess.run([str(script), "dvc", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "3.67.1", r.stdout + r.stderr
    r = subprocess.run([str(script), "sh", "-c", 'test -w "$HOME" && echo "$HOME"'], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("/tmp/home."), r.stdout + r.stderr
    shutil.rmtree(r.stdout.strip(), ignore_errors=True)


def test_user_git_kernel_and_cache_settings():
    runs = " && ".join(of("RUN"))
    user = of("USER")[-1]
    assert user.split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert "git config --system --add safe.directory '*'" in runs
    assert "git config --system user.name" in runs and "git config --system user.email" in runs
    assert "dvc config --system cache.dir /cache" in runs and '"/cache"' in of("VOLUME")[-1]
    assert "ipykernel install --sys-prefix --name python3" in (ROOT / "Makefile").read_text()


def test_dockerignore_keeps_out_environments_caches_outputs_and_credentials():
    pats = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    for p in (".venv", ".dvc/cache", ".dvc/tmp", ".dvc/config.local", "runs", "**/__pycache__"):
        assert p in pats, p
    needed = ["Makefile", "requirements.lock", "pyproject.toml", "docker/entrypoint.sh", "repro", "dvc.yaml"]
    for f in needed:  # what the Dockerfile copies must stay in the build context
        assert not any(f == p or f.startswith(p.rstrip("/") + "/") for p in pats), f


def test_hadolint_is_clean():
    hadolint = need_tool("hadolint")  # the project's tools venv (`make tools`); under CI=true never skipped
    r = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
