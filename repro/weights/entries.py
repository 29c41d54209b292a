"""Every published checkpoint the tiers may use, registered in ``WEIGHTS``."""
from __future__ import annotations

from .convert import convert_fast_adversarial, convert_madrylab, convert_smoothing, convert_torchvision
from .registry import PublishedWeights, register


_TV = "https://download.pytorch.org/models/"
for _arch, _prefix in (("resnet18", "f37072fd"), ("resnet50", "0676ba61")):
    register(PublishedWeights(
        name=f"torchvision_{_arch}_imagenet1k_v1", arch=_arch, kind="standard",
        url=f"{_TV}{_arch}-{_prefix}.pth", filename=f"{_arch}-{_prefix}.pth", sha256=_prefix,
        converter=convert_torchvision, publisher="torchvision",
        notes="IMAGENET1K_V1; the file name embeds the sha256 prefix that torchvision checks"))

# the FID feature network of Robust Tickets Table II (repro/fid.py), not a pretraining starting point
register(PublishedWeights(
    name="torchvision_inception_v3_imagenet1k_v1", arch="inception_v3", kind="fid_features",
    url=f"{_TV}inception_v3_google-0cc3c7bd.pth", filename="inception_v3_google-0cc3c7bd.pth", sha256="0cc3c7bd",
    converter=convert_torchvision, publisher="torchvision",
    notes="Inception_V3_Weights.IMAGENET1K_V1 (ported from TensorFlow; inputs in [-1, 1]); FID features only"))

# the FID literature's feature network (Heusel et al. 2017's TensorFlow Inception of 2015-12-05, as pytorch-fid
# serves it under torchvision's names): the default of every tier that reports FID (repro/fid.py). Pinned in code by
# the sha256 prefix its file name carries (torch.hub's convention, as torchvision's entries above); the full hash
# goes into weights.lock.yaml once someone with the file runs `python -m repro.weights pin` (docs/PARAMETERS.md).
register(PublishedWeights(
    name="fid_inception_v3_2015_12_05", arch="fid_inception_v3", kind="fid_features",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    filename="pt_inception-2015-12-05-6726825d.pth", sha256="6726825d", converter=convert_torchvision,
    publisher="pytorch-fid (M. Seitzer), ported from TensorFlow's inception-2015-12-05.tgz",
    notes="FID Inception (1008 classes; inputs in [-1, 1]); FID features only. The name's 6726825d is the "
          "sha256 prefix by torch.hub's convention, not checked by pytorch-fid; a third party records the full "
          "sha256 of torch-fidelity's copy of the same file name as 6726825d0af5f729cebd5821db510b11b1cfad8faad88a0"
          "3f1befd49fb9129b2: compare with it before pinning"))

_HF = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/"
for _arch in ("resnet18", "resnet50"):
    for _eps in (0.5, 1.0, 2.0, 4.0, 8.0):
        register(PublishedWeights(
            name=f"madrylab_{_arch}_linf_eps{_eps}", arch=_arch, kind="pgd_adversarial", eps=_eps / 255,
            url=f"{_HF}{_arch}_linf_eps{_eps}.ckpt", filename=f"{_arch}_linf_eps{_eps}.ckpt",
            converter=convert_madrylab, legacy_pickle=True, publisher="MadryLab (Salman et al. 2020)",
            notes="robust-models-transfer; dict model/optimizer/schedule/epoch/amp pickled with dill"))

for _eps in (2, 4):
    register(PublishedWeights(
        name=f"fastadv_resnet50_linf_eps{_eps}.0", arch="resnet50", kind="fast_adversarial", eps=_eps / 255,
        url="https://github.com/locuslab/fast_adversarial/tree/master/ImageNet", direct=False,
        filename=f"imagenet_model_weights_{_eps}px.pth.tar", converter=convert_fast_adversarial,
        publisher="Wong et al. 2020 (locuslab/fast_adversarial)",
        notes="the README links the files on Google Drive (no direct URL); evaluated at 288 px"))

for _sigma in ("0.25", "0.50", "1.00"):
    register(PublishedWeights(
        name=f"smoothing_resnet50_sigma{_sigma}", arch="resnet50", kind="random_smoothing", sigma=float(_sigma),
        url="https://drive.google.com/file/d/1h_TpbXm5haY5f-l4--IKylmdz6tvPoR4/view?usp=sharing", direct=False,
        filename=f"cohen2019_imagenet_resnet50_noise_{_sigma}.pth.tar",
        archive_member=f"models/imagenet/resnet50/noise_{_sigma}/checkpoint.pth.tar",
        converter=convert_smoothing, publisher="Cohen et al. 2019 (locuslab/smoothing)",
        notes="one Google Drive archive (models/) with every noise level"))
