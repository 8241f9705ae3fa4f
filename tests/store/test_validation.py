"""Kinds, keys and suffixes that could leave the root are rejected; bad roots give one clear line."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import platformdirs
import pytest

from viscnn.errors import ViscnnError
from viscnn.store import Store, default_root

BAD_KINDS = ["", "..", ".", "../x", "a/b", "a\\b", "/abs", "Scores", "sc ores", "x" * 65, "k\x00", "k.v", "~k"]
BAD_KEYS = ["", ".", "..", "../../etc/passwd", "a/../../b", "a..b", "a/b", "a\\b", "/abs", ".hidden", "x" * 201,
            "k\x00", "a b", "k~1", "ké", "C:x"]


def one_line(exc: pytest.ExceptionInfo[ViscnnError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_kinds_are_rejected_everywhere(store: Store, kind: str) -> None:
    calls = [lambda: store.put_bytes(kind, "k", b"x"), lambda: store.put_file(kind, "k", Path.touch),
             lambda: store.get_path(kind, "k"), lambda: store.get_bytes(kind, "k"), lambda: store.meta(kind, "k"),
             lambda: store.delete(kind, "k"), lambda: (kind, "k") in store, lambda: store.entries(kind),
             lambda: store.clear(kind)]
    for call in calls:
        with pytest.raises(ViscnnError, match="invalid store kind") as exc:
            call()
        one_line(exc)
    assert sorted(p.name for p in store.root.iterdir()) == ["index.sqlite", "index.sqlite-shm", "index.sqlite-wal",
                                                            "viscnn-store.txt"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected_everywhere(store: Store, key: str) -> None:
    calls = [lambda: store.put_bytes("k", key, b"x"), lambda: store.put_file("k", key, Path.touch),
             lambda: store.get_path("k", key), lambda: store.get_bytes("k", key), lambda: store.meta("k", key),
             lambda: store.delete("k", key), lambda: ("k", key) in store]
    for call in calls:
        with pytest.raises(ViscnnError, match="invalid store key"):
            call()
    assert store.entries() == [] and not (store.root / "k").exists()


@pytest.mark.parametrize("suffix", ["/x", "/../../x", "..", ".a/b", ".a.b.c", "bin", ".b~", ". ", "." + "x" * 17])
def test_bad_suffixes_are_rejected(store: Store, suffix: str) -> None:
    with pytest.raises(ViscnnError, match="invalid store suffix"):
        store.put_bytes("k", "key", b"x", suffix=suffix)
    assert store.entries() == []


def test_good_names_are_accepted(store: Store) -> None:
    for kind, key, suffix in [("a", "k", ""), ("feature_vis-2", "A.b_c-1", ".tar.gz"), ("x" * 64, "y" * 200, ".png"),
                              ("-", "-", ".-")]:
        path = store.put_bytes(kind, key, b"ok", suffix=suffix)
        assert path.is_relative_to(store.root) and store.get_bytes(kind, key) == b"ok"


def test_symlinked_kind_folder_leading_outside_is_refused(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store.root / "scores").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ViscnnError, match="leads outside the store root"):
        store.put_bytes("scores", "k", b"x")
    assert list(outside.iterdir()) == []


def test_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "afile"
    root.write_text("user data")
    with pytest.raises(ViscnnError, match="is a file") as exc:
        Store(root)
    assert str(root) in one_line(exc) and root.read_text() == "user data"
    with pytest.raises(ViscnnError, match="cannot create store folder") as exc:
        Store(root / "store")
    assert str(root / "store") in one_line(exc)


def test_unwritable_root(tmp_path: Path) -> None:
    root = tmp_path / "locked"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o555)
        unlock = [lambda: root.chmod(0o755)]
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode == 0:
        unlock = [lambda: subprocess.run(["chattr", "-i", str(root)], check=True)]
    else:
        pytest.skip("running as root without chattr: cannot make a folder unwritable")
    try:
        with pytest.raises(ViscnnError, match="cannot write store folder") as exc:
            Store(root)
        assert str(root) in one_line(exc)
        with pytest.raises(ViscnnError, match="cannot create store folder"):
            Store(root / "sub")
    finally:
        unlock[0]()


def test_corrupt_index_is_reported_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store(root) as store:
        store.put_bytes("a", "k", b"x")
    index = root / "index.sqlite"
    for side in ("index.sqlite-wal", "index.sqlite-shm"):
        (root / side).unlink(missing_ok=True)
    garbage = b"this is not a database" * 300
    index.write_bytes(garbage)
    with pytest.raises(ViscnnError, match="corrupt") as exc:
        Store(root)
    text = one_line(exc)
    assert str(index) in text and "delete it" in text
    assert index.read_bytes() == garbage and (root / "a" / "k" / "k.bin").exists()
    index.unlink()  # what the message suggests: the store starts empty and vacuum clears the old files
    store = Store(root)
    assert store.get_path("a", "k") is None
    assert store.vacuum().orphan_files == 1


def test_foreign_sqlite_index_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    conn = sqlite3.connect(root / "index.sqlite")
    conn.execute("CREATE TABLE photos (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ViscnnError, match="not a viscnn store index") as exc:
        Store(root)
    assert str(root / "index.sqlite") in one_line(exc)


def test_non_empty_folder_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "home"
    (root / "ab").mkdir(parents=True)
    (root / "ab" / "abc.txt").write_text("user data")
    with pytest.raises(ViscnnError, match="not a viscnn store") as exc:
        Store(root)
    assert str(root) in one_line(exc)
    assert sorted(p.name for p in root.rglob("*")) == ["ab", "abc.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Store(empty).root == empty.resolve()


def test_env_var_sets_the_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISCNN_STORE", str(tmp_path / "from-env"))
    assert default_root() == tmp_path / "from-env"
    store = Store()
    assert store.root == (tmp_path / "from-env").resolve()
    store.put_bytes("a", "k", b"x")
    assert (tmp_path / "from-env" / "a" / "k" / "k.bin").is_file()
    assert Store(tmp_path / "explicit").root == (tmp_path / "explicit").resolve()


def test_default_root_without_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISCNN_STORE", raising=False)
    monkeypatch.delenv("VISCNN_HOME", raising=False)
    assert default_root() == Path(platformdirs.user_cache_dir("viscnn")) / "store"
    monkeypatch.setenv("VISCNN_STORE", "")
    assert default_root() == Path(platformdirs.user_cache_dir("viscnn")) / "store"
    monkeypatch.setenv("VISCNN_HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "store"
