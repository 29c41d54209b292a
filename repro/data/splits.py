"""Which images a run trains and validates on: ``subset_indices`` (data-limited transfer, 100/10/1 %:
stratified or the official "first N"), ``validation_split`` (the official "last n_val training images"),
``held_out`` / ``with_held_out`` (checkpoint selection's held-out images: last, stratified, or ``auto``, the
last unless that changes the class balance), ``check_classes`` (the data stage's refusal of a split that
loses a class)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..base.errors import DataError
from .arrays import ArrayTask

SUBSET_METHODS = ("stratified", "first")


def _check_fraction(fraction) -> float:
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if isinstance(fraction, bool) or not math.isfinite(f) or not 0 < f <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return f


def subset_indices(y: np.ndarray, fraction: float, how: str = "stratified", seed: int = 0) -> np.ndarray:
    """Sorted indices of a ``fraction`` of the samples with labels ``y`` (data-limited transfer).

    ``"stratified"`` (default): per class, ``max(1, round(fraction * n_c))`` samples
    drawn at random (``seed``), so class proportions are kept and every present
    class keeps at least one sample (for tiny fractions the total may therefore
    exceed ``round(fraction * N)``). ``"first"``: the official code's first
    ``max(1, round(fraction * N))`` samples, in dataset order.
    """
    f = _check_fraction(fraction)
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {list(y.shape)}")
    n = y.shape[0]
    if how == "first":
        return np.arange(max(1, int(round(f * n))), dtype=np.int64)
    if how != "stratified":
        raise ValueError(f"subset method {how!r} is not allowed; allowed: {', '.join(SUBSET_METHODS)}")
    if f == 1.0:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, 0x5B5E7]))
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = min(idx.size, max(1, int(round(f * idx.size))))
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def validation_split(n: int, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """The official code's validation set: the last ``n_val`` of ``n`` training images.

    Returns ``(train_indices, val_indices)``.
    """
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val < n:
        raise ValueError(f"n_val must be an int in [0, {n - 1}] for {n} training images, got {n_val!r}")
    return np.arange(n - n_val, dtype=np.int64), np.arange(n - n_val, n, dtype=np.int64)


def check_held_out(n: int, total: int, task: str | None = None, key: str = "transfer.validation.n") -> None:
    """``key`` (``transfer.validation.n``, or another count of held-out images such as
    ``pretrain.early_stopping.n``) must leave training images: ``n`` in [1, ``total`` - 1]. One check for the data
    stage (early, naming the task) and the stages that split (at split time)."""
    if not 0 < n < total:
        where = f"task {task!r} has {total} training images (after data.fraction)" if task else \
            f"there are {total} training images"
        raise DataError(f"{key} = {n} held-out images, but {where}; allowed: n in [1, {total - 1}] "
                        f"(lower {key}, or use more data)")


#: ``auto`` keeps the official "last n" unless a chi-square test of its class counts against a random draw of n
#: images rejects it at this level (or it loses a class): then the held-out images are stratified
BALANCE_ALPHA = 1e-3
HOW = ("last", "stratified", "auto")


def last_keeps_balance(y: np.ndarray, n: int, alpha: float = BALANCE_ALPHA) -> bool:
    """Whether the last ``n`` of the labels ``y`` are a fair draw of the classes: every class of ``y`` stays in both
    parts, and Pearson's chi-square of the last ``n``'s class counts against the split's proportions (divided by the
    finite-population factor (N - n) / (N - 1) of drawing without replacement) is below its ``1 - alpha`` quantile.
    Shuffled files (CIFAR's batches) pass; class-sorted ones (CUB-200's images.txt) fail."""
    from scipy.stats import chi2

    y = np.asarray(y)
    total = int(y.shape[0])
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        return True
    tail = np.unique(y[total - n:], return_counts=True)
    head = np.unique(y[:total - n])
    if len(tail[0]) < len(classes) or len(head) < len(classes):
        return False
    observed = np.zeros(len(classes))
    observed[np.searchsorted(classes, tail[0])] = tail[1]
    expected = counts * n / total
    stat = float(((observed - expected) ** 2 / expected).sum()) / ((total - n) / max(1, total - 1))
    return stat <= chi2.ppf(1 - alpha, len(classes) - 1)


def resolve_how(y: np.ndarray, how: str, n: int) -> str:
    """The rule ``how`` takes for labels ``y``: ``auto`` becomes ``last`` or ``stratified`` (:func:`last_keeps_balance`)."""
    if how not in HOW:
        raise DataError(f"transfer.validation.how {how!r} is not allowed; allowed: {', '.join(HOW)}")
    if how != "auto":
        return how
    return "last" if last_keeps_balance(y, n) else "stratified"


def held_out(y: np.ndarray, how: str, n: int, key: str = "transfer.validation.n") -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out validation indices) of a training split with labels ``y``.

    ``last``: the official code's last ``n`` images. ``stratified``: ``n`` images in the classes'
    proportions (largest remainders), drawn with a fixed seed, so every run and seed of a task holds
    out the same images. ``auto``: ``last`` when :func:`last_keeps_balance`, else ``stratified``. Both index
    arrays are sorted and disjoint, and together cover the split. ``key``: the parameter ``n`` comes from (errors).
    """
    y = np.asarray(y)
    total = int(y.shape[0])
    check_held_out(n, total, key=key)
    how = resolve_how(y, how, n)
    if how == "last":
        return validation_split(total, n)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / total
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]] += 1
    rng = np.random.default_rng(np.random.SeedSequence([0x5EA1, n]))
    val = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]))
    return np.setdiff1d(np.arange(total, dtype=np.int64), val), val.astype(np.int64)


def lost_classes(y: np.ndarray, num_classes: int) -> list[int]:
    """The classes in [0, ``num_classes``) without an image among the labels ``y``."""
    present = np.unique(np.asarray(y))
    return sorted(set(range(int(num_classes))) - set(int(c) for c in present))


def check_classes(task: str, y_train: np.ndarray, num_classes: int, how: str = "none", n: int = 0) -> str:
    """Refuse (``DataError``, one line) a training split without an image of every class, and, with held-out
    validation (``how`` != ``none``, ``n`` images), a held-out part or a remaining training part that loses a class.
    Returns the rule the held-out split takes (``last``/``stratified``, or ``none``)."""
    def names(c: list[int]) -> str:
        return ", ".join(map(str, c[:5])) + (f" and {len(c) - 5} more" if len(c) > 5 else "")

    lost = lost_classes(y_train, num_classes)
    if lost:
        raise DataError(f"task {task!r}: its training split has no image of {len(lost)} of its {num_classes} classes "
                        f"(class {names(lost)}); allowed: every class (check data.root, data.max_train, data.fraction)")
    if how == "none":
        return how
    y = np.asarray(y_train)
    check_held_out(n, int(y.shape[0]), task)
    rule = resolve_how(y, how, n)
    train_idx, val_idx = held_out(y, rule, n)
    for part, idx in (("held-out validation images", val_idx), ("training images left beside them", train_idx)):
        lost = lost_classes(y[idx], num_classes)
        if lost:
            raise DataError(f"transfer.validation: task {task!r}'s {len(idx)} {part} ({rule} rule, n = {n} of "
                            f"{len(y)}) miss {len(lost)} of its {num_classes} classes (class {names(lost)}); allowed: "
                            f"a split keeping every class (how: stratified or auto, and n >= {num_classes} with at "
                            f"least 2 images per class)")
    return rule


def with_held_out(task: ArrayTask, how: str, n: int, key: str = "transfer.validation.n") -> ArrayTask:
    """``task`` with its held-out images moved to the end of the training split (the rest keep their
    file order, so the official "first N" fractions still take the first images): ``make_dataloaders(...,
    val_from_train=n)`` then trains on the rest and validates on them. The test split is the same object.
    ``how`` ``auto`` takes the rule :func:`resolve_how` gives; ``key``: the parameter ``n`` comes from (errors).
    Stratified held-out images take the classes in turn (the first image of every class, then the second, ...), so
    the first ``robust_images`` of them, the ones the held-out PGD accuracy attacks, cover the classes too when the
    files are sorted by class (CUB-200, an ImageNet folder)."""
    how = resolve_how(task.y_train, how, n)
    train_idx, val_idx = held_out(task.y_train, how, n, key)
    if how == "last":
        return task
    yv = task.y_train[val_idx]
    rank = np.empty(len(val_idx), dtype=np.int64)   # position of each held-out image within its class
    for c in np.unique(yv):
        rank[yv == c] = np.arange(int((yv == c).sum()))
    val_idx = val_idx[np.lexsort((yv, rank))]       # by rank, then class: round robin over the classes
    order = np.concatenate([train_idx, val_idx])   # a streamed task's ImageFiles reorders its file list, lazily
    return dataclasses.replace(task, x_train=task.x_train[order], y_train=task.y_train[order], stats=task.stats)
