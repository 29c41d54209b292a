"""Stage `reference`: the independently trained robust model of Double-Win Table A2.

A dense network trained from random initialisation with PGD adversarial
training on the transfer-attack task; its PGD-20 examples are the "transfer
attack from an unseen robust model". Writes ``runs/reference/<task>/model.pt``.
"""
from __future__ import annotations

import sys

from ..config import Params
from ..pipeline.reference import train_reference
from .common import log, run_stage


def body(p: Params) -> None:
    task = train_reference(p)
    log("reference", f"robust reference model for {task} trained" if task else
        "off (evaluation.transfer_attack: false): no reference model, no transfer attack")


def main(argv=None) -> int:
    return run_stage("reference", body)


if __name__ == "__main__":
    sys.exit(main())
