"""No network at import time (issue 18, point 5).

albumentations 2.0.8 asks PyPI for a newer version whenever it is imported unless
``NO_ALBUMENTATIONS_UPDATE`` is set: on an offline cluster node every stage would wait up to 2 s
for the request and print a warning. The package sets the switch before any of its modules can
import albumentations, so importing the data layer (which imports albumentations) opens no socket,
even when the user's environment does not set it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Record every attempt to resolve a name or open a connection, then import the data layer.
PROBE = r"""
import json, socket, sys
calls = []
def refuse(name):
    def f(*a, **k):
        calls.append(name)
        raise OSError(f"network disabled in this test ({name})")
    return f
socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.create_connection = refuse("socket.create_connection")
socket.getaddrinfo = refuse("socket.getaddrinfo")
import repro.data  # imports albumentations
import albumentations
print(json.dumps({"calls": calls, "albumentations": albumentations.__version__,
                  "switch": __import__("os").environ.get("NO_ALBUMENTATIONS_UPDATE")}))
"""


def _probe(env: dict) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_importing_the_data_layer_opens_no_socket():
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = _probe(env)
    assert out["calls"] == [], f"network used at import: {out['calls']}"
    assert out["switch"] == "1"


def test_a_users_own_setting_is_kept():
    """setdefault: a user who wants the update check (NO_ALBUMENTATIONS_UPDATE=0) keeps it."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="0")
    out = _probe(env)
    assert out["switch"] == "0"
    assert out["calls"], "the probe must see albumentations' version check when it is enabled"


def test_the_image_and_the_makefile_set_the_switch():
    """Every stage, test and the container get it, also for code that imports albumentations first."""
    assert "NO_ALBUMENTATIONS_UPDATE=1" in (ROOT / "Dockerfile").read_text()
    assert "export NO_ALBUMENTATIONS_UPDATE" in (ROOT / "Makefile").read_text()
