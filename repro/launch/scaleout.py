"""The grid on many machines: DVC stages submitted as jobs through submitit (SLURM or local processes).

    python -m repro.launch.scaleout --dry                                # the plan: which stages, in which order
    python -m repro.launch.scaleout                                      # run it as local processes
    python -m repro.launch.scaleout --cluster slurm --partition gpu --gpus-per-node 1 --cpus-per-task 8 \\
        --timeout-min 720                                         # as SLURM jobs (untested here: no cluster)
    python -m repro.launch.scaleout pretrain imp --mode isolated         # targets + their upstream; jobs in clones

The head (this process) reads the stage graph from DVC (``foreach`` expanded, edges from
``deps``/``outs``), keeps the targets (default: every stage) and their upstream, drops the stages
``dvc status`` reports up to date unless something upstream re-runs (``--force``: keep all), and
submits one job per stage as soon as every stage it depends on has succeeded: independent stages
run in parallel (``--max-parallel``), a failed stage stops only what depends on it.

Two modes:

``shared`` (default): every job works in this workspace (a shared filesystem on a cluster) and runs
``dvc --wait-for-lock repro --single-item <stage>``. DVC has one lock per repository, held while
it reads and records state (``dvc.lock``, the cache) and released while the stage's command runs,
so jobs overlap their compute and only serialize their bookkeeping; ``--wait-for-lock`` (a global
dvc option in DVC 3) makes a job wait for the lock instead of failing at once. With a default DVC
remote (or ``--remote``), each job then pushes its outputs and the run-cache
(``dvc push --run-cache <stage>``); the head finally checks ``dvc status`` of the targets.

``isolated``: every job clones the repository at its current commit into node-local scratch
(``--scratch``, default the system temp folder), runs ``dvc repro --pull <stage>`` there (upstream
stages are restored from the remote's run-cache, not run again), pushes outputs and run-cache, and
deletes the clone; the head collects with ``dvc repro --pull`` of the targets, which checks every
stage out of the run-cache (nothing runs) and records it in ``dvc.lock``. Needs a remote every
node reaches, committed code and params (``git status`` clean) and credentials in the environment
(``--local`` DVC config is not cloned).

Threads: a job's stage uses ``REPRO_THREADS`` threads: the CPUs the job is allowed to use (SLURM's
allocation: its affinity and cgroup quota, ``repro.base.cpus``), or for local processes the head's CPU
budget divided by ``--max-parallel``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path

from ..base import cpus

BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")


# ----------------------------------------------------------------------------- plan
def stage_graph(root: Path) -> dict[str, set[str]]:
    """Every stage (``name`` or ``name@item``) -> the stages it depends on directly."""
    import contextlib

    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(".") as repo:  # addressing is relative to the working directory
        g = repo.index.graph  # edges: stage -> the stage producing one of its deps
        return {st.addressing: {d.addressing for d in g.successors(st)} for st in g.nodes}


def _run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def changed_stages(root: Path) -> set[str]:
    """The stages ``dvc status`` reports as changed (their own deps, params, outs or command)."""
    r = _run([DVC, "--wait-for-lock", "status", "--json"], root)
    return set(json.loads(r.stdout or "{}"))


def upstream(graph: dict[str, set[str]], stages) -> set[str]:
    seen, todo = set(), list(stages)
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(graph[s])
    return seen


@dataclass
class Plan:
    order: list[str]                                   # topological: upstream first
    deps: dict[str, set[str]] = field(default_factory=dict)  # stage -> planned stages it waits for
    up_to_date: list[str] = field(default_factory=list)


def make_plan(graph: dict[str, set[str]], targets=None, changed: set[str] | None = None, force: bool = False) -> Plan:
    """The stages to run: ``targets`` (default all) and their upstream, minus those up to date.

    A stage runs if it changed itself or anything it depends on runs (``force``: always).
    """
    if targets:
        unknown = [t for t in targets if t not in graph and not any(s.startswith(t + "@") for s in graph)]
        if unknown:
            raise SystemExit(f"unknown stage(s): {', '.join(unknown)}; stages: {', '.join(sorted(graph))}")
        wanted = {s for s in graph for t in targets if s == t or s.startswith(t + "@")}
        selected = upstream(graph, wanted)
    else:
        selected = set(graph)
    topo = [s for s in TopologicalSorter({s: graph[s] & selected for s in selected}).static_order()]
    runs: set[str] = set()
    for s in topo:
        if force or changed is None or s in changed or graph[s] & runs:
            runs.add(s)
    return Plan(order=[s for s in topo if s in runs], deps={s: graph[s] & runs for s in topo if s in runs},
                up_to_date=[s for s in topo if s not in runs])


# ------------------------------------------------------------------------------ jobs
def default_remote(root: Path) -> str | None:
    r = _run([DVC, "config", "core.remote"], root, check=False)
    return r.stdout.strip() or None


def _job_env(threads: int | None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `python -m repro.stages.*` is this Python
    env.pop("VIRTUAL_ENV", None)
    if threads is None:
        threads = cpus.budget()[0]  # the job's own cpuset and quota
    env["REPRO_THREADS"] = str(threads)
    return env


def run_stage_job(root: str, stage: str, mode: str = "shared", remote: str | None = None,
                  rev: str | None = None, scratch: str | None = None, threads: int | None = None) -> dict:
    """One job: reproduce ``stage``, push its outputs and the run-cache; returns a small report.

    Runs on the worker (pickled by submitit); raises on failure so the job shows as failed.
    """
    t0 = time.time()
    env = _job_env(threads)
    log: list[str] = []

    def sh(cmd: list[str], cwd: Path) -> None:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        log.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        print(log[-1], flush=True)
        if r.returncode:
            raise RuntimeError(f"stage {stage}: `{' '.join(cmd)}` failed with exit code {r.returncode}\n"
                               f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}")

    push = [DVC, "--wait-for-lock", "push", "--run-cache"] + (["-r", remote] if remote else [])
    if mode == "shared":
        work = Path(root)
        sh([DVC, "--wait-for-lock", "repro", "--single-item", stage], work)
        if remote:
            sh(push + [stage], work)
    elif mode == "isolated":
        if not remote:
            raise RuntimeError("isolated jobs need a DVC remote")
        base = Path(scratch or tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"repro-{stage.replace('@', '-')}-", dir=base))
        try:
            sh(["git", "clone", "--quiet", "--no-checkout", root, str(work)], base)
            sh(["git", "checkout", "--quiet", rev or "HEAD"], work)
            local_cfg = Path(root) / ".dvc" / "config.local"  # e.g. credentials, if the nodes share it
            if local_cfg.is_file():
                shutil.copy(local_cfg, work / ".dvc" / "config.local")
            sh([DVC, "remote", "default", "--local", remote], work)  # `repro --pull` uses the default remote
            sh([DVC, "repro", "--pull", stage], work)
            sh(push, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        raise ValueError(f"mode {mode!r} is not allowed; allowed: shared, isolated")
    return {"stage": stage, "host": socket.gethostname(), "start": t0, "end": time.time(),
            "seconds": round(time.time() - t0, 1), "ran": any("Running stage" in entry for entry in log),
            "restored": re.findall(r"Stage '([^']+)' is cached - skipping run", "".join(log))}


# ---------------------------------------------------------------------------- driver
def make_executor(cluster: str, folder: Path, a) -> "object":
    import submitit

    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": a.timeout_min, "name": "repro"}
    if cluster == "slurm":
        params.update(cpus_per_task=a.cpus_per_task, gpus_per_node=a.gpus_per_node, mem_gb=a.mem_gb,
                      slurm_partition=a.partition)
        if a.slurm_setup:
            params["slurm_setup"] = a.slurm_setup
    elif cluster == "local":
        params.update(gpus_per_node=a.gpus_per_node)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def drive(root: Path, plan: Plan, executor, mode: str, remote: str | None, max_parallel: int,
          rev: str | None = None, scratch: str | None = None, threads: int | None = None,
          poll_s: float = 1.0, out=print) -> dict[str, dict]:
    """Submit the plan's stages as their dependencies finish; returns stage -> report or error."""
    waiting, running, results = list(plan.order), {}, {}
    failed: set[str] = set()
    while waiting or running:
        for s in list(waiting):  # stages whose upstream failed never start
            if plan.deps[s] & failed:
                waiting.remove(s)
                failed.add(s)
                results[s] = {"stage": s, "error": "skipped: an upstream stage failed"}
                out(f"[scaleout] {s}: skipped (upstream failed)")
        ready = [s for s in waiting if not (plan.deps[s] - set(results))]
        for s in ready[:max(0, max_parallel - len(running))]:
            waiting.remove(s)
            running[s] = executor.submit(run_stage_job, str(root), s, mode, remote, rev, scratch, threads)
            out(f"[scaleout] {s}: submitted (job {running[s].job_id})")
        for s, job in list(running.items()):
            try:
                finished = job.done()
            except Exception:  # noqa: BLE001 - the debug executor runs the job inside done()
                finished = True
            if finished:
                del running[s]
                try:
                    results[s] = job.result()
                    out(f"[scaleout] {s}: done on {results[s]['host']} in {results[s]['seconds']} s")
                except Exception as e:  # noqa: BLE001 - the job's own error, reported per stage
                    failed.add(s)
                    results[s] = {"stage": s, "error": str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)}
                    out(f"[scaleout] {s}: FAILED ({results[s]['error']}); logs in {job.paths.stdout.parent}")
        if waiting or running:
            time.sleep(poll_s)
    return results


def collect(root: Path, targets: list[str], mode: str, remote: str | None, out=print) -> bool:
    """Head node: bring the results into this workspace (isolated mode; in shared mode they are
    already there) and check with ``dvc status`` that nothing is left to run."""
    if mode == "isolated":
        r = _run([DVC, "--wait-for-lock", "repro", "--pull", *targets], root, env=_job_env(None))
        out(r.stdout.strip())
        if "Running stage" in r.stdout:
            out("[scaleout] warning: the head had to run a stage itself (not found in the run-cache)")
    r = _run([DVC, "--wait-for-lock", "status", *targets], root, check=False)
    out(r.stdout.strip())
    return r.returncode == 0 and "up to date" in r.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.launch.scaleout", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help="stages (name or name@item; a foreach name means every item); "
                                               "default: all")
    ap.add_argument("--cluster", default="local", choices=("local", "slurm", "debug"),
                    help="submitit executor (debug: in this process, one at a time)")
    ap.add_argument("--mode", default="shared", choices=("shared", "isolated"))
    ap.add_argument("--remote", help="DVC remote for pushes (default: the repository's default remote, if any)")
    ap.add_argument("--no-push", action="store_true", help="shared mode: do not push after each stage")
    ap.add_argument("--max-parallel", type=int, default=None,
                    help="jobs at once (default: 64 on SLURM, the number of cores locally)")
    ap.add_argument("--force", action="store_true", help="also run stages that are up to date")
    ap.add_argument("--dry", action="store_true", help="print the plan and exit")
    ap.add_argument("--logs", default=".dvc/tmp/scaleout",
                    help="submitit's folder for job scripts, logs and report.json (shared by head and jobs)")
    ap.add_argument("--scratch", help="isolated mode: node-local folder for the clones")
    ap.add_argument("--timeout-min", type=int, default=24 * 60)
    ap.add_argument("--partition", help="SLURM partition")
    ap.add_argument("--gpus-per-node", type=int, default=None)
    ap.add_argument("--cpus-per-task", type=int, default=None)
    ap.add_argument("--mem-gb", type=int, default=None)
    ap.add_argument("--slurm-setup", nargs="*", help="shell lines run before each SLURM job (e.g. module load)")
    a = ap.parse_args(argv)

    root = Path(_run(["git", "rev-parse", "--show-toplevel"], Path.cwd()).stdout.strip())
    graph = stage_graph(root)
    plan = make_plan(graph, a.targets, changed=None if a.force else changed_stages(root), force=a.force)
    remote = None if a.no_push and a.mode == "shared" else (a.remote or default_remote(root))
    print(f"[scaleout] {len(plan.order)} stage(s) to run, {len(plan.up_to_date)} up to date; mode {a.mode}, "
          f"executor {a.cluster}, remote {remote or '(none: no push)'}")
    for s in plan.order:
        print(f"  {s}" + (f"  <- {', '.join(sorted(plan.deps[s]))}" if plan.deps[s] else ""))
    if a.dry or not plan.order:
        return 0
    rev = None
    if a.mode == "isolated":
        if not remote:
            raise SystemExit("--mode isolated needs a DVC remote (dvc remote add -d ... or --remote)")
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout.strip()
        if dirty:
            raise SystemExit(f"--mode isolated clones the current commit; commit these changes first:\n{dirty}")
        rev = _run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    cores = cpus.budget()[0]
    max_parallel = a.max_parallel or (64 if a.cluster == "slurm" else cores)
    threads = max(1, cores // max_parallel) if a.cluster != "slurm" else None
    executor = make_executor(a.cluster, root / a.logs, a)
    t0 = time.time()
    results = drive(root, plan, executor, a.mode, remote, max_parallel, rev=rev, scratch=a.scratch,
                    threads=threads)
    (root / a.logs / "report.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    failed = sorted(s for s, r in results.items() if "error" in r)
    print(f"[scaleout] {len(results) - len(failed)} stage(s) done, {len(failed)} failed, in {time.time() - t0:.0f} s")
    if failed:
        print("[scaleout] failed: " + ", ".join(failed))
        return 1
    targets = a.targets or []
    return 0 if collect(root, targets, a.mode, remote) else 1


if __name__ == "__main__":
    sys.exit(main())
