"""Checkpoint selection on held-out training images (``transfer.validation``): per-epoch validation SA and RA,
and the best-SA / best-RA weights."""
from __future__ import annotations

import torch
from fastai.callback.core import Callback


class HeldOutValidation(Callback):
    """Checkpoint selection on held-out training images (the official Double-Win code validates on
    the last 5,000 training images and keeps the best-validation-SA and best-validation-RA weights).

    After every epoch: validation SA on every image of ``loader`` (default: the learner's valid
    loader, which the caller fills with held-out *training* images, never the test set) and
    validation RA under ``attack_kwargs`` PGD on its first ``n_robust`` images (0 = no RA, no
    ``best_ra``), both in float32 (no autocast) on an eval-mode copy of the model. ``self.history``
    holds ``{'epoch', 'val_sa', 'val_ra'}`` per epoch; ``self.best`` maps ``'best_sa'``/``'best_ra'``
    to ``{'epoch', 'value', 'state'}`` (a CPU copy of the weights; ties keep the earlier epoch).
    The random start of epoch ``e`` is seeded with ``(seed, e)``: a resumed run gives the same numbers.
    """

    order = 60  # after the Recorder's validation pass, before snapshots (90) and EpochCheckpoint (99)

    def __init__(self, attack_kwargs: dict, n_robust: int, seed: int = 0, loader=None):
        if n_robust < 0:
            raise ValueError(f"n_robust must be >= 0, got {n_robust}")
        self.attack_kwargs, self.n_robust, self.seed, self.loader = dict(attack_kwargs), int(n_robust), seed, loader
        self.history: list[dict] = []
        self.best: dict[str, dict] = {}

    def before_fit(self):
        self.history, self.best = [], {}

    def after_epoch(self):
        from functools import partial

        from .. import metrics
        from ..base import runtime
        from ..attacks import pgd

        loader = self.loader if self.loader is not None else self.learn.dls.valid
        fast = runtime.inference_model(self.learn.model)  # eval copy; the training model is untouched
        sa = metrics.accuracy(*metrics.collect_logits(fast, loader, progress=False, amp=False))
        ra = None
        if self.n_robust:
            gen = torch.Generator().manual_seed(int(self.seed) * 100_003 + int(self.epoch))
            attack = partial(pgd, amp=False, generator=gen, **self.attack_kwargs)
            ra = metrics.accuracy(*metrics.collect_logits(fast, _first_images(loader, self.n_robust),
                                                          attack=attack, progress=False, amp=False))
        self.history.append({"epoch": int(self.epoch), "val_sa": sa, "val_ra": ra})
        for key, value in (("best_sa", sa), ("best_ra", ra)):
            if value is not None and (key not in self.best or value > self.best[key]["value"]):
                state = {k: v.detach().cpu().clone() for k, v in self.learn.model.state_dict().items()}
                self.best[key] = {"epoch": int(self.epoch), "value": value, "state": state}

    def ckpt_state(self):  # EpochCheckpoint: the validation log and the best weights so far
        return {"history": self.history, "best": self.best}

    def ckpt_load(self, state):
        self.history, self.best = list(state["history"]), dict(state["best"])


def _first_images(loader, n: int):
    """The batches of ``loader`` truncated to its first ``n`` images."""
    left = n
    for batch in loader:
        if left <= 0:
            return
        x, y = batch[0], batch[1]
        yield x[:left], y[:left]
        left -= len(y)
