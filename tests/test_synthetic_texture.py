"""The synthetic generator's non-robust class texture (issue 19, point 4: source signals of different
robustness; a domain gap that decides whether the source's texture code still applies downstream)."""
from __future__ import annotations

import numpy as np
import pytest

from repro.config.params import TextureParams
from repro.data.synthetic import _texture_basis, make_task
from repro.registries import params_from

AMP = 3 / 255


def _pair(gap=0.0, name="tex", n=200, classes=10, tile=3, basis=8, amp=AMP):
    tx = TextureParams(amplitude=amp, tile=tile, basis=basis)
    return (make_task(name, classes, n, 0, 16, gap, 0),
            make_task(name, classes, n, 0, 16, gap, 0, texture=tx), tx)


def test_amplitude_zero_is_the_generator_without_texture():
    plain = make_task("tex", 10, 120, 40, 16, 0.3, 2)
    off = make_task("tex", 10, 120, 40, 16, 0.3, 2, texture=TextureParams())
    assert plain.x_train.tobytes() == off.x_train.tobytes() and plain.x_test.tobytes() == off.x_test.tobytes()


def test_texture_is_a_periodic_class_tile_of_exact_amplitude_and_erasable_within_it():
    """Textured minus plain image = +-amplitude (in uint8 levels: 3) wherever neither is clipped, the sign
    pattern is periodic with the tile and the same for every image of a class: so an L-inf adversary with
    eps >= amplitude can remove the whole signal, as the non-robust features of Ilyas et al."""
    plain, tex, tx = _pair()
    d = tex.x_train.astype(int) - plain.x_train.astype(int)
    inside = (plain.x_train > 5) & (plain.x_train < 250)
    assert set(np.unique(np.abs(d[inside]))) <= {2, 3, 4}  # 3 levels, +-1 where the float lands near .5
    assert np.mean(np.abs(d[inside]) == 3) > 0.99
    signs = np.sign(d)
    for c in range(tex.num_classes):
        s = signs[tex.y_train == c]
        ref = s[0]
        assert np.mean(s[:, inside[tex.y_train == c].all(0)] == ref[inside[tex.y_train == c].all(0)]) > 0.99
        assert np.array_equal(ref[:3, :3], ref[3:6, 3:6]) and np.array_equal(ref[:3, :3], ref[9:12, 6:9])
    assert len({signs[tex.y_train == c][0, :3, :3].tobytes() for c in range(tex.num_classes)}) == tex.num_classes


def test_texture_alone_predicts_the_class():
    """A matched filter against each class's tile pattern classifies textured images far above chance
    (pixel noise, contrast and brightness jitter included), and plain images at chance: the texture is a
    second predictive signal, independent of the prototypes."""
    plain, tex, _ = _pair(n=600)
    signs = np.sign(tex.x_train.astype(int) - plain.x_train.astype(int)).astype(float)
    pats = np.stack([signs[tex.y_train == c][0] for c in range(tex.num_classes)])  # [C, H, W, 3]
    pats -= pats.mean((1, 2, 3), keepdims=True)

    def acc(x):
        x = x.astype(float) - x.mean((1, 2, 3), keepdims=True)
        return np.mean(np.einsum("nhwc,khwc->nk", x, pats).argmax(1) == tex.y_train)

    hp = lambda x: x.astype(float) - np.roll(x.astype(float), 1, axis=2)  # high-pass: the prototypes are smooth
    a_tex, a_plain = acc(hp(tex.x_train)), acc(hp(plain.x_train))
    assert a_tex > 0.5, a_tex
    assert a_plain < 0.2, a_plain


def _fit_r2(tiles: np.ndarray, basis: np.ndarray) -> float:
    """Mean R^2 of least-squares fits of the +-1 tiles in the span of the basis tiles."""
    B = basis.reshape(len(basis), -1).T
    r2 = []
    for t in tiles.reshape(len(tiles), -1):
        coef, *_ = np.linalg.lstsq(B, t, rcond=None)
        r2.append(1 - np.sum((t - B @ coef) ** 2) / np.sum(t ** 2))
    return float(np.mean(r2))


@pytest.mark.parametrize("gap, closer", [(0.0, "source"), (1.0, "far")])
def test_domain_gap_decides_which_code_space_the_tiles_live_in(gap, closer):
    """At gap 0 a downstream task's class tiles lie in the source's code space (texture detectors learned on
    the source apply); at gap 1 in an unrelated one."""
    plain, tex, tx = _pair(gap=gap, name="down", classes=20, n=200)
    signs = np.sign(tex.x_train.astype(int) - plain.x_train.astype(int)).astype(float)
    tiles = np.stack([signs[tex.y_train == c][0, 3:6, 3:6] for c in range(tex.num_classes)])
    r2 = {w: _fit_r2(tiles, _texture_basis(w, 0, tx)) for w in ("source", "far")}
    other = "far" if closer == "source" else "source"
    assert r2[closer] > r2[other] + 0.2, r2


def test_bad_texture_values_are_refused_with_their_key():
    with pytest.raises(ValueError, match=r"amplitude: 0.8 is outside \[0, 0.5\]"):
        TextureParams(amplitude=0.8)
    with pytest.raises(ValueError, match=r"tile: 1 must be an int >= 2"):
        TextureParams(tile=1)
    with pytest.raises(Exception, match=r"data\.synthetic\.texture\.basis"):
        params_from({"data": {"synthetic": {"texture": {"basis": 0}}}})
