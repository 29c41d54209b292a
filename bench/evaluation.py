"""Bench sections `eval` (PGD-20 robust accuracy: ours vs torchattacks' PGD) and `aa` (AutoAttack's
APGD-CE + APGD-T: ours vs torchattacks' on a small adversarially trained model)."""
from __future__ import annotations

import statistics
import time

import torch

from bench.common import ALPHA, EPS, log, median_ratio, model_for, ratio_range
from repro.base import runtime

#: (batches, batch size) per robust-accuracy call in the eval section: a call lasts a few seconds here
EVAL_BATCHES = {"tiny": (3, 64), "r18": (1, 16)}


def bench_eval(models: list[str], repeats: int) -> dict:
    """Robust accuracy (PGD-20) of ``batches`` batches, end to end on both sides: ours is
    ``metrics.robust_accuracy`` (which folds Conv-BN into a copy of the model once per call, then
    attacks and classifies); torchattacks' PGD attacks the model itself, then the same classification."""
    import torchattacks

    from repro.metrics import robust_accuracy

    out = {}
    dev = runtime.device()
    for key in models:
        batches, bs = EVAL_BATCHES[key]
        model = runtime.prepare_model(model_for(key), dev).eval()
        g = torch.Generator().manual_seed(0)
        loader = [(torch.rand(bs, 3, 32, 32, generator=g).to(dev), torch.randint(0, 10, (bs,), generator=g).to(dev))
                  for _ in range(batches)]
        ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=20, random_start=True)

        def ours_once():
            robust_accuracy(model, loader, eps=EPS, alpha=ALPHA, steps=20, progress=False)

        def ta_once():
            correct = 0
            for x, y in loader:
                adv = ta(x, y)
                with torch.no_grad():
                    correct += int((model(adv).argmax(1) == y).sum())

        ours_once(), ta_once()  # warm-up
        o, t = [], []
        for _ in range(repeats):
            for fn, acc in ((ours_once, o), (ta_once, t)):
                t0 = time.perf_counter()
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                acc.append(bs * batches / (time.perf_counter() - t0))
        out[key] = {"ours_img_s": statistics.median(o), "torchattacks_img_s": statistics.median(t),
                    "ratio": median_ratio(o, t), "ratio_range": ratio_range(o, t), "batches": batches,
                    "batch_size": bs, "ours_runs": o, "torchattacks_runs": t}
        log(f"eval {key}: ours {out[key]['ours_img_s']:.1f} img/s, torchattacks {out[key]['torchattacks_img_s']:.1f}")
    return out


def _robust_tiny(seed: int = 0):
    """A small adversarially trained model (PGD-3 at 8/255, 4 epochs, ~20 s) on the default synthetic task
    (10 classes, 16 px), and 100 of its test images: RA well above 0, so the attacks have work to do."""
    import torch.nn.functional as F

    from repro.attacks import pgd
    from repro.data.synthetic import make_task
    from repro.models import build_model

    torch.manual_seed(seed)
    t = make_task("synth_near", 10, 600, 300, size=16, gap=0.15, seed=seed)
    x = torch.tensor(t.x_train).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor(t.y_train).long()
    model = build_model("cifar_resnet", 10, depths=(1, 1, 1), width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(4):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            model.eval()
            xa = pgd(model, x[idx], y[idx], eps=EPS, alpha=EPS / 2, steps=3)
            model.train()
            loss = F.cross_entropy(model(xa), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt = torch.tensor(t.x_test[:100]).permute(0, 3, 1, 2).float() / 255
    return model.eval(), xt, torch.tensor(t.y_test[:100]).long()


def bench_aa(repeats: int) -> dict:
    """``ra_aa`` (``metrics.robust_accuracy_aa``: APGD-CE then APGD-T over 9 classes, 100 iterations each,
    standard AutoAttack) vs torchattacks 3.5.1's same members (``MultiAttack([APGD(ce), APGDT])``, 100
    iterations, 9 targets) on the same robust model and 100 images, both end to end (attack + classify)."""
    import torchattacks

    from repro.metrics import robust_accuracy_aa

    model, x, y = _robust_tiny()
    ta = torchattacks.MultiAttack([
        torchattacks.APGD(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0),
        torchattacks.APGDT(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=10, seed=0)])
    accs: dict = {}

    def ours_once():
        accs["ours"] = robust_accuracy_aa(model, [(x, y)], steps=100, n_target_classes=9, progress=False, seed=0)

    def ta_once():
        with torch.no_grad():
            accs["torchattacks"] = (model(ta(x, y)).argmax(1) == y).float().mean().item()

    o, t = [], []
    for _ in range(repeats):
        for fn, acc in ((ours_once, o), (ta_once, t)):
            t0 = time.perf_counter()
            fn()
            acc.append(len(y) / (time.perf_counter() - t0))
    with torch.no_grad():
        sa = (model(x).argmax(1) == y).float().mean().item()
    out = {"model": "ResNet-8 w8, 10 classes, 16 px, PGD-3 adversarially trained", "images": len(y), "sa": sa,
           "ra_aa": accs["ours"], "ra_torchattacks": accs["torchattacks"],
           "ours_img_s": statistics.median(o), "torchattacks_img_s": statistics.median(t),
           "ratio": median_ratio(o, t), "ratio_range": ratio_range(o, t), "ours_runs": o, "torchattacks_runs": t,
           "note": "shared 2-core machine (other jobs running): the timings are noisy"}
    log(f"aa: ours {out['ours_img_s']:.2f} img/s (RA {accs['ours']:.2f}), torchattacks {out['torchattacks_img_s']:.2f} "
        f"img/s (RA {accs['torchattacks']:.2f})")
    return out
