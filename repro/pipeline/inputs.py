"""The inputs of the stages, loaded from the pipeline's folders: the data stage's tasks, the pretrained
networks, and the networks a ticket is drawn from or transferred with."""
from __future__ import annotations

from pathlib import Path

import torch

from ..base.errors import CheckpointError
from ..base.io import load_torch
from ..config import Params
from ..data import ArrayTask
from ..models import model_from_params, replace_head, set_normalization
from ..plan import RUNS, pretrained_dir


# ----------------------------------------------------------------------------- data
def task_path(name: str) -> Path:
    return RUNS / "data" / f"{name}.npz"


def load_task(name: str) -> ArrayTask:
    path = task_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {str(path)!r} is missing; run the data stage first (dvc repro data)")
    return ArrayTask.load(path)


# --------------------------------------------------------------------------- models
def pretrained_path(kind: str, source: str = "") -> Path:
    """The pretrained network of ``kind``: its own (``runs/pretrain/<kind>``) or an ε-grid model (``source``)."""
    return pretrained_dir(kind, source) / "model.pt"


def load_state(path: Path) -> dict:
    sd = load_torch(path)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{str(path)!r} is not a state_dict (a dict of tensors)")
    return sd


def load_into(model: torch.nn.Module, sd: dict, path: Path, skip_head: bool = False) -> None:
    own = model.state_dict()
    keys = [k for k in own if not (skip_head and k.startswith("fc."))]
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks {len(missing)} weights of the model, e.g. {missing[0]!r} "
                              "(a checkpoint of another architecture?)")
    for k in keys:
        if tuple(sd[k].shape) != tuple(own[k].shape):
            raise CheckpointError(f"{str(path)!r}: {k!r} has shape {tuple(sd[k].shape)}, "
                                  f"the model needs {tuple(own[k].shape)}")
    model.load_state_dict({k: sd[k] for k in keys}, strict=not skip_head)


def source_model(p: Params, num_classes: int, mean, std) -> torch.nn.Module:
    return model_from_params(p.model, num_classes, mean=mean, std=std)


def pretrained_source_model(p: Params, kind: str, source: str = "") -> tuple[ArrayTask, torch.nn.Module]:
    """The source task and the pretrained network of ``kind`` (``source``: an ε-grid model) on it."""
    task = load_task(p.data.source)
    model = source_model(p, task.num_classes, task.mean, task.std)
    load_into(model, load_state(pretrained_path(kind, source)), pretrained_path(kind, source))
    return task, model


def ticket_base(p: Params, kind: str, task_name: str | None, source: str = "") -> tuple[ArrayTask, torch.nn.Module]:
    """Where a ticket is drawn: the pretrained source network, or (downstream IMP / A-IMP) its transfer to a task."""
    if task_name is None:
        return pretrained_source_model(p, kind, source)
    task = load_task(task_name)
    return task, downstream_model(p, kind, task, source)


def downstream_model(p: Params, kind: str, task: ArrayTask, source: str = "") -> torch.nn.Module:
    """Pretrained backbone of ``kind`` (``source``: an ε-grid model), a fresh head for ``task``, the task's
    normalization."""
    path = pretrained_path(kind, source)
    sd = load_state(path)
    src_classes = sd["fc.weight"].shape[0] if "fc.weight" in sd else task.num_classes
    model = model_from_params(p.model, src_classes)
    load_into(model, sd, path)
    replace_head(model, task.num_classes)
    set_normalization(model, task.mean, task.std)
    return model
