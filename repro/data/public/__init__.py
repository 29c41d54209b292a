"""Public image datasets read from their published on-disk formats into ``ArrayTask`` s.

``PUBLIC_DATASETS`` (a registry) maps a name to a loader with one signature::

    loader(root, size, max_train=None, max_test=None, download=False, upscale=True) -> ArrayTask

``root`` is the user's ``data.root`` folder; images come back as uint8 NHWC RGB
arrays at ``size`` x ``size`` (cv2 ``INTER_AREA`` when downsizing, ``INTER_LINEAR``
when upsizing; non-square images: shorter side to ``size``, then the centre
crop); labels are int64. ``ArrayTask`` computes the per-channel mean/std of the
training images, which the pipeline uses as the downstream normalization (as the
official code does). ``max_train`` / ``max_test`` keep only the first N images
*per class* in file order (deterministic; a tier can run on a fraction of a
dataset). ``upscale=False`` keeps fixed-size datasets whose native images are
smaller than ``size`` (CIFAR, SVHN 32 px; Tiny-ImageNet 64 px) at their native
size: every augmentation recipe resizes to the training size anyway, and a
224-px CIFAR array would take 7.5 GB. ``load_public(name, root, size, ...)``
dispatches by name.

Layouts under ``root`` (the formats the datasets are published in):

* ``cifar10``: ``cifar-10-batches-py/data_batch_1..5, test_batch`` (torchvision
  layout: the python pickles, dicts with ``b"data"`` uint8 [N, 3072] row-major
  CHW and ``b"labels"``). ``cifar100``: ``cifar-100-python/train, test``
  (``b"fine_labels"``). The pickles are read by a restricted unpickler that
  resolves only the globals numpy arrays need (``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``; ``numpy._core`` spellings and
  ``_frombuffer`` of protocol-5 pickles too) and refuses every other one.
  torchvision's dataset classes are not used for reading (they check the md5 of
  the real files); ``download=True`` fetches missing files with them.
* ``svhn``: ``train_32x32.mat``, ``test_32x32.mat`` in ``root`` or ``root/svhn``
  (``X`` [32, 32, 3, N] uint8, ``y`` [N, 1] with 10 meaning digit 0, mapped to 0
  as torchvision does).
* ``tiny_imagenet``: ``tiny-imagenet-200/wnids.txt`` (class order = line order),
  ``train/<wnid>/images/<wnid>_<i>.JPEG``, ``val/images/val_<i>.JPEG`` with
  ``val/val_annotations.txt`` (tab-separated filename, wnid, box); the val split
  is the test split; grayscale JPEGs are converted to RGB.
* ``imagenet``: ``imagenet/train/<wnid>/*.JPEG`` and ``imagenet/val/<wnid>/*.JPEG``
  (the val images sorted into class folders, as ``torchvision.datasets.ImageNet``
  or the usual ``valprep.sh`` leave them); class order = sorted wnids. Streamed:
  the task holds the file list (``repro.data.files.ImageFiles``) and each image is
  decoded when a loader reads it, so all 1.28 M images serve paper-scale IMP; the
  per-class caps, when set, take the first files of each class.
* The Robust Tickets Fig. 9 sets, through the torchvision dataset classes (their
  layouts, under ``root``): ``aircraft`` (FGVCAircraft, trainval / test,
  ``fgvc-aircraft-2013b/``), ``pets`` (OxfordIIITPet, trainval / test,
  ``oxford-iiit-pet/``), ``cars`` (StanfordCars, train /
  test, ``stanford_cars/``; no longer downloadable), ``food`` (Food101, train /
  test, ``food-101/``), ``dtd`` (DTD partition 1, train+val / test,
  ``dtd/dtd/``), and the sets without an official split, split per class in
  torchvision's order: ``sun397`` (``SUN397/``, the first 50 images per class
  train, the next 50 test, the size of the standard partitions; files sorted by
  path), ``caltech101`` (``caltech101/101_ObjectCategories/``, 30 per class train,
  the rest test), ``caltech256`` (``caltech256/256_ObjectCategories/``, 60 per
  class train, the rest test).
* ``cub200``: ``CUB_200_2011/`` (the published archive): ``images.txt`` (``<id> <path>``),
  ``image_class_labels.txt`` (``<id> <class>``, 1-based), ``train_test_split.txt`` (``<id> <1 =
  train>``), ``classes.txt``, ``images/<path>``; the official split (Double-Win Fig. A10).
* ``visda17``: VisDA-2017 classification, ``visda17/{train,validation}/`` (the published tars), each
  with ``image_list.txt`` (``<path relative to the split> <label 0-11>``) and ``<class>/...`` images;
  train = ``train`` (synthetic), test = ``validation`` (real) (Double-Win Fig. A10).
* ``flowers``: Oxford Flowers-102 in torchvision's layout, ``flowers-102/`` (``jpg/image_%05d.jpg``,
  ``imagelabels.mat``, ``setid.mat``), read here (``torchvision.datasets.Flowers102`` refuses any ``.mat``
  file but the published bytes); train = train + val, test = test (Robust Tickets Fig. 9).
* ``birdsnap``: Birdsnap 1.1, ``birdsnap/`` (the published archive): tab-separated ``species.txt``,
  ``images.txt`` (``path``, ``species_id`` columns) and ``test_images.txt`` (header ``path``), each
  with a header line; images as ``get_birdsnap.py`` stores them (``download/images/<path>``, or
  ``images/<path>``); test = the 2,443 listed images, train = the rest; images named in the script's
  ``fail.txt`` and absent are skipped (Robust Tickets Fig. 9).

Every missing file is one ``DataError`` naming the dataset, the path expected
and how to get it; truncated or corrupted files are a ``DataError`` naming the
file. torchvision is imported only for downloads and the Fig. 9 sets; scipy and
PIL only when a loader needs them.
"""
from . import cifar_svhn, imagenet, lists, torchvision_sets  # noqa: F401  (register the datasets)
from .common import PUBLIC_DATASETS, first_per_class, keep_fraction, load_public, safe_unpickle
from .lists import VISDA_CLASSES
from .torchvision_sets import TORCHVISION_SETS, TorchvisionSpec
from ..files import fit_square

__all__ = ["PUBLIC_DATASETS", "TORCHVISION_SETS", "VISDA_CLASSES", "TorchvisionSpec", "first_per_class", "fit_square",
           "keep_fraction", "load_public", "safe_unpickle"]
