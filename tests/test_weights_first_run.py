"""Published weights, first run (issue 13, point 10): one explicit command for a user with internet
downloads an unpinned checkpoint, shows its size and sha256, and writes the lock entry; nothing else
ever pins a hash, and `fetch`'s refusal names that command. The "internet" is a local file URL."""
from __future__ import annotations

import dataclasses

import pytest

from repro import weights as W
from test_weights import MADRY18, files, net, write_lock  # noqa: F401  (module fixtures)


@pytest.fixture
def served(files, monkeypatch, tmp_path):
    """MADRY18 published at a file:// URL; an empty lock and an empty weights cache."""
    entry = dataclasses.replace(W.WEIGHTS.get(MADRY18), url=files[MADRY18].as_uri())
    real_get = W.WEIGHTS.get
    monkeypatch.setattr(W.WEIGHTS, "get", lambda name: entry if name == MADRY18 else real_get(name))
    lock = write_lock(tmp_path / "lock.yaml", {})
    cache = tmp_path / "cache"
    return entry, lock, cache


def test_unpinned_refusal_names_the_download_command(served, tmp_path):
    _, lock, cache = served
    with pytest.raises(W.WeightsError, match=rf"with internet, run `python -m repro\.weights pin {MADRY18}`") as e:
        W.fetch(MADRY18, tmp_path / "model.pt", cache_dir=cache, lock=lock)
    assert "\n" not in str(e.value) and not (tmp_path / "model.pt").exists()
    assert W.read_lock(lock).get(MADRY18) is None and not cache.exists()  # a refusal pins nothing


def test_pin_downloads_shows_size_and_sha256_then_fetch_works(served, files, tmp_path, capsys):
    _, lock, cache = served
    assert W.main(["--lock", str(lock), "pin", MADRY18, "--cache", str(cache), "--dry-run"]) == 0
    assert W.read_lock(lock).get(MADRY18) is None  # --dry-run shows, never writes
    capsys.readouterr()
    assert W.main(["--lock", str(lock), "pin", MADRY18, "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    want, size = W.sha256_file(files[MADRY18]), files[MADRY18].stat().st_size
    assert out.startswith(want) and f"({size} bytes" in out
    assert W.read_lock(lock)[MADRY18] == want  # the hash computed from the downloaded bytes
    assert (cache / files[MADRY18].name).read_bytes() == files[MADRY18].read_bytes()
    got = W.fetch(MADRY18, tmp_path / "model.pt", cache_dir=cache, lock=lock, download=False)
    assert got.sha256 == want and got.dest.is_file()


def test_a_download_that_does_not_load_is_not_pinned(served, monkeypatch, tmp_path, capsys):
    entry, lock, cache = served
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"<html>not a checkpoint</html>")
    bad = dataclasses.replace(entry, url=junk.as_uri())
    monkeypatch.setattr(W.WEIGHTS, "get", lambda name: bad)
    assert W.main(["--lock", str(lock), "pin", MADRY18, "--cache", str(cache)]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
    assert W.read_lock(lock).get(MADRY18) is None
    assert not (cache / entry.filename).exists()  # the download that failed is not kept
