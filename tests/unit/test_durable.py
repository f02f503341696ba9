"""trashlib.durable: new directories made with their mode, each made durable in its parent."""

import os
import stat

from trashlib import durable


def test_makedirs_makes_each_missing_directory_and_syncs_each_parent(tmp_path, monkeypatch):
    synced = []
    real = durable.fsync_dir
    monkeypatch.setattr(durable, "fsync_dir", lambda p: (synced.append(p), real(p)))
    target = tmp_path / "a" / "b" / "c"
    durable.makedirs(str(target))
    assert target.is_dir()
    for path in (tmp_path / "a", tmp_path / "a/b", target):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o755 & ~_umask()
    assert synced == [str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a/b")]
    synced.clear()
    durable.makedirs(str(target))  # there already: nothing made, nothing synced
    assert synced == []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
