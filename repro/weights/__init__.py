"""Published pretrained ImageNet checkpoints: registry (``registry``, ``entries``), pinned hashes (``lock``),
verified fetching (``fetch``), converters (``convert``), restricted loading (``safeload``), the CLI (``cli``).

One registry entry (``WEIGHTS``) per published file: architecture (``resnet18`` /
``resnet50``, torchvision's ImageNet ResNets as built by ``repro.models.build_model``),
pretraining kind, eps or sigma, where the publisher serves it, the file name, the
sha256 known in code, the converter to a plain torchvision state_dict and the input
normalization (ImageNet mean/std, applied outside the network by all four publishers).

Hashes. ``weights.lock.yaml`` (next to this module) holds one sha256 per entry, or
``null`` when nobody has pinned it yet. torchvision's file names embed the first 8 hex
digits of the file's sha256 and torchvision itself checks only that prefix; those
prefixes are pinned in code and verified the same way (a lock entry may extend a prefix
to the full hash, never contradict it). Nothing else can be hashed here (no internet),
so the other entries start as ``null`` and ``fetch`` REFUSES them until pinned::

    python -m repro.weights pin <name> <file>     # prints the sha256 and records it in the lock
    python -m repro.weights pin <name>            # with internet: downloads it first (direct URLs)

Check the printed hash against the publisher's (Hugging Face shows a SHA256 on each LFS
file's page) before committing the lock. Any mismatch, a truncated file included, is one
line naming the file, the expected and the actual hash; a mismatching download is
deleted and nothing is written to the output.

Loading. Always ``torch.load(path, map_location="cpu", weights_only=True)``; never
``weights_only=False``. MadryLab's files were pickled with ``dill``, which may reference
``dill._dill._load_type`` (types by name) and, in some training scripts,
``argparse.Namespace``. For those entries only (``legacy_pickle=True``) the RESTRICTED
path adds an explicit allowlist for the duration of the load with
``torch.serialization.safe_globals``, mapping each name to a safe local stand-in:

* ``dill._dill._load_type`` / ``dill.dill._load_type`` -> ``_dill_load_type``, a lookup
  into a fixed table of builtin data types (``NoneType``, ``int``, ``list``, ...);
  anything else (``CodeType``, ``FunctionType``, ...) is refused;
* ``argparse.Namespace`` -> ``_Namespace``, an inert attribute container.

torch's weights-only unpickler still decides everything else (tensor rebuild functions,
storages, ``collections.OrderedDict``; ``os``/``sys``/``posix`` are blocked even if
allowlisted), so a file that references any other global (``os.system``,
``builtins.eval``, dill's function/code builders) is refused before anything runs. A
custom ``pickle_module`` is not an option: torch 2.14's ``torch.load`` raises
"Can not safely load weights when explicit pickle_module is specified" with
``weights_only=True`` (serialization.py), and a ``pickle_module`` with
``weights_only=False`` would hand control to an unrestricted unpickler. The allowlist
is process-global while the ``with`` block runs (torch's design); loads are not
concurrent here.
"""
from . import entries  # noqa: F401  (registers the checkpoints)
from .cli import main
from .convert import (convert, convert_fast_adversarial, convert_madrylab, convert_smoothing, convert_torchvision,
                      reference_shapes, validate_state_dict)
from .fetch import WEIGHTS_ENV, Fetched, fetch, pin, pin_download, weights_dir
from .lock import LOCK_FILE, expected_sha256, read_lock, sha256_file, write_lock_entry
from .registry import WEIGHTS, PublishedWeights, register
from .safeload import _Namespace, load_checkpoint  # noqa: F401  (_Namespace: tests check the stand-in)
from ..base.errors import WeightsError

__all__ = ["LOCK_FILE", "WEIGHTS", "WEIGHTS_ENV", "Fetched", "PublishedWeights", "WeightsError", "convert",
           "convert_fast_adversarial", "convert_madrylab", "convert_smoothing", "convert_torchvision",
           "expected_sha256", "fetch", "load_checkpoint", "main", "pin", "pin_download", "read_lock", "reference_shapes",
           "register", "sha256_file", "validate_state_dict", "weights_dir", "write_lock_entry"]
