"""``python -m repro.weights``: list the registered checkpoints, pin one's hash, fetch and convert one."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..base.errors import CheckpointError, WeightsError
from .fetch import WEIGHTS_ENV, fetch, pin, pin_download
from .lock import LOCK_FILE, expected_sha256, lock_name
from .registry import WEIGHTS, PublishedWeights

DESCRIPTION = "Published pretrained ImageNet checkpoints: registry, pinned hashes, verified fetching, converters."


def _fmt(entry: PublishedWeights, lock) -> str:
    try:
        h = expected_sha256(entry.name, lock)
    except WeightsError as e:
        h = f"ERROR {e}"
    radius = (f"eps {entry.eps * 255:g}/255" if entry.eps is not None
              else f"sigma {entry.sigma:g}" if entry.sigma is not None else "-")
    return f"{entry.name:38s} {entry.kind:17s} {entry.arch:9s} {radius:13s} {(h or 'UNPINNED'):16.16s} {entry.url}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.weights", description=DESCRIPTION)
    ap.add_argument("--lock", default=None, help=f"lock table (default {LOCK_FILE})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every registered checkpoint and its pin")
    p = sub.add_parser("pin", help="print the size and sha256 of a local copy (no FILE: download it into the "
                                   "weights cache first) and record the hash in the lock")
    p.add_argument("name")
    p.add_argument("file", nargs="?", default=None, help="a local copy; omitted: download the direct URL")
    p.add_argument("--cache", default=None, help=f"weights cache (default ${WEIGHTS_ENV} or data/weights)")
    p.add_argument("--dry-run", action="store_true", help="print only; do not write the lock")
    f = sub.add_parser("fetch", help="verify + convert one checkpoint into a plain state_dict")
    f.add_argument("name")
    f.add_argument("dest")
    f.add_argument("--cache", default=None, help=f"weights cache (default ${WEIGHTS_ENV} or data/weights)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "list":
            for name in WEIGHTS.names():
                print(_fmt(WEIGHTS.get(name), a.lock))
        elif a.cmd == "pin":
            if a.file is None:
                path, size, h = pin_download(a.name, a.lock, a.cache, write=not a.dry_run)
            else:
                path, h = Path(a.file), pin(a.name, a.file, a.lock, write=not a.dry_run)
                size = path.stat().st_size
            print(f"{h}  {path}  ({size} bytes, {size / 2**20:.1f} MiB)")
            print(f"{'would pin' if a.dry_run else 'pinned'} {a.name} in {lock_name(a.lock)}: compare the hash "
                  "with the publisher's before committing it", file=sys.stderr)
        else:
            r = fetch(a.name, a.dest, cache_dir=a.cache, lock=a.lock)
            print(f"{r.name}: sha256 {r.sha256} ok -> {r.dest}")
    except (WeightsError, CheckpointError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"[weights] error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
