"""Files on disk, indexed in SQLite, written atomically: viscnn's cache of computed results.

Layout under the root::

    viscnn-store.txt                 marks the folder as a store (a non-empty folder without it is refused)
    index.sqlite (+ -wal, -shm)      table entries: one row per (kind, key): relative path, size, sha256,
                                     created, meta JSON; table pending: the rows of writes in flight
    <kind>/<key[:2]>/<key><suffix>   the files
    <kind>/<key[:2]>/<key>~<pid>-<random><suffix>   temp files of writes in flight (those of killed writers
                                                    are swept when a store opens: `Store.sweep`)

A write goes to a temp file in the target's folder and is flushed and fsynced; its row is committed to
the index's `pending` table (its intent); then, holding the index's write lock, the file is renamed over
the target (`os.replace`) and the row moves to `entries` in one transaction. Readers check the recorded
size (and sha256, for `get_path`/`get_bytes`): a file that fails is recovered from a crashed writer's
intent if it matches one (see `Store._settle`), else dropped, never served.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viscnn import paths
from viscnn.errors import ViscnnError
from viscnn.store.index import Index, Row
from viscnn.store.keys import KIND, TEMP, check_key, check_kind, check_suffix, make_key

MARKER = "viscnn-store.txt"
INDEX = "index.sqlite"
_CHUNK = 1 << 20
TEMP_AGE = 3600.0  # a temp file this old (s) is a dead write's even if its writer's pid is alive again (reused)


def default_root() -> Path:
    """`$VISCNN_STORE`, else `store` in viscnn's folder (`$VISCNN_HOME`, else the user cache folder)."""
    return Path(os.environ.get("VISCNN_STORE") or paths.home() / "store")


@dataclass(frozen=True)
class Entry:
    """One stored file as the index records it (`path` is absolute)."""

    kind: str
    key: str
    path: Path
    size: int
    sha256: str
    created: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Vacuumed:
    """What `Store.vacuum` removed: temp files and intents of dead writers, files no row names, rows
    whose file failed its check (and matched no intent)."""

    temp_files: int
    orphan_files: int
    dropped_rows: int
    stale_intents: int = 0


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _folders(folder: Path) -> list[Path]:
    """The sub-folders of `folder` (not symlinks), sorted."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def _writer_gone(pid: int, when: float, cutoff: float) -> bool:
    """Whether the writer `pid` of a temp file or intent from time `when` can no longer finish it."""
    if when < cutoff or pid <= 0:
        return True
    if pid == os.getpid() or os.name != "posix":
        return False  # ours (maybe another thread), or no cheap liveness check: the age rule decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Store:
    """A folder of cached files with a SQLite index; safe across threads, processes and crashes."""

    def __init__(self, root: str | Path | None = None, timeout: float = 30.0) -> None:
        """Open (creating if needed) the store at `root`, default `default_root()`.

        Raises ViscnnError if `root` is a file, cannot be written, is a non-empty folder that is not a
        store, or holds a corrupt index. `timeout` is how long a writer waits for another one.
        """
        root = Path(root) if root is not None else default_root()
        root = root.expanduser()
        if root.exists() and not root.is_dir():
            raise ViscnnError(f"store root {root} is a file, not a folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ViscnnError(f"cannot create store folder {root}: {exc.strerror or exc}") from exc
        self.root: Path = root.resolve()
        self._claim()
        self._index = Index(self.root / INDEX, timeout=timeout)
        self.swept = self.sweep()

    def _claim(self) -> None:
        """Check the root is writable and is (or becomes) a store, not someone's folder of files."""
        marker = self.root / MARKER
        try:
            if not marker.exists():
                # A store gets its marker before anything else, so re-check it after listing the folder.
                if next(self.root.iterdir(), None) is not None and not marker.exists() \
                        and not (self.root / INDEX).exists():
                    raise ViscnnError(f"store root {self.root} is a non-empty folder that is not a viscnn store; "
                                      "choose a new or empty folder")
                try:
                    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    pass  # another process claimed it first
                else:
                    with os.fdopen(fd, "w") as handle:
                        handle.write("A viscnn cache store: files indexed by index.sqlite. "
                                     "Safe to delete as a whole; cached results are then recomputed.\n")
            probe = self.root / f"probe{TEMP}{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except PermissionError as exc:
            raise ViscnnError(f"cannot write store folder {self.root}: {exc.strerror or exc}") from exc
        except OSError as exc:
            raise ViscnnError(f"cannot use store folder {self.root}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Close the index connections (the store reopens them if used again)."""
        self._index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "timeout": self._index.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["timeout"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- keys and paths ------------------------------------------------------------------------

    @staticmethod
    def key(kind: str, **parts: Any) -> str:
        """A stable sha256 hex digest of `kind` and `parts` (canonical JSON, sorted keys; tuples = lists).

        Parts are str/int/float/bool/None or lists/tuples/dicts of those; anything else is a TypeError.
        """
        return make_key(kind, parts)

    def _inside(self, path: Path) -> Path:
        """`path` if it resolves inside the root, else a ViscnnError."""
        resolved = path.resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise ViscnnError(f"store path {path} leads outside the store root {self.root}")
        return path

    def _target(self, kind: str, key: str, suffix: str) -> tuple[Path, str]:
        check_kind(kind)
        check_key(key)
        check_suffix(suffix)
        rel = f"{kind}/{key[:2]}/{key}{suffix}"
        return self._inside(self.root / rel), rel

    def _row_path(self, row: Row) -> Path | None:
        """The absolute path a row names, or None if it would leave the root (a tampered index)."""
        try:
            return self._inside(self.root / row.path)
        except ViscnnError:
            return None

    # -- writing -------------------------------------------------------------------------------

    def put_bytes(self, kind: str, key: str, data: bytes, *, meta: dict[str, Any] | None = None,
                  suffix: str = ".bin") -> Path:
        """Store `data` under (kind, key), replacing any previous entry; returns the file's path."""
        data = bytes(data)

        def write(tmp: Path) -> None:
            try:
                with open(tmp, "xb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise ViscnnError(f"cannot write store file {tmp}: {exc.strerror or exc}") from exc

        return self._put(kind, key, write, meta, suffix, (len(data), hashlib.sha256(data).hexdigest()))

    def put_file(self, kind: str, key: str, write: Callable[[Path], None], *, meta: dict[str, Any] | None = None,
                 suffix: str = ".bin") -> Path:
        """Store the file `write(tmp)` creates at `tmp` (a temp path ending in `suffix`, in the store's folder).

        The store then fsyncs it, renames it into place atomically and records it; returns the final path.
        If `write` raises, nothing is stored and the temp file is removed.
        """
        return self._put(kind, key, write, meta, suffix, None)

    def _put(self, kind: str, key: str, write: Callable[[Path], None], meta: dict[str, Any] | None,
             suffix: str, known: tuple[int, str] | None) -> Path:
        target, rel = self._target(kind, key, suffix)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"store meta must be a dict or None, not {type(meta).__name__}")
        meta_json = json.dumps(meta or {}, sort_keys=True)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ViscnnError(f"cannot create store folder {target.parent}: {exc.strerror or exc}") from exc
        token = f"{os.getpid()}-{secrets.token_hex(6)}"
        tmp = target.parent / f"{key}{TEMP}{token}{suffix}"
        renamed = False
        try:
            write(tmp)  # the caller's own errors pass through unchanged
            if not tmp.is_file():
                raise RuntimeError(f"the writer for store entry {kind}/{key} did not create the file {tmp}")
            try:
                if known is None:
                    with open(tmp, "rb+") as handle:
                        os.fsync(handle.fileno())
                    known = (tmp.stat().st_size, _sha256_file(tmp))
                row = Row(kind, key, rel, known[0], known[1], time.time(), meta_json)
                self._index.add_pending(token, row)  # committed before the rename: see _settle
                with self._index.transaction() as conn:  # the write lock: no other writer between rename and row
                    old = self._index.get(kind, key)
                    os.replace(tmp, target)
                    renamed = True  # from here on, the intent is what recovers this write if the commit fails
                    self._index.upsert(conn, row)
                    self._index.drop_pending(conn, token)
                    if old is not None and old.path != rel:
                        self._unlink(self._row_path(old))
                _fsync_dir(target.parent)  # make the rename durable
            except OSError as exc:
                raise ViscnnError(f"cannot write store file {target}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
            if not renamed:
                self._forget_pending(token)
        return target

    def _forget_pending(self, token: str) -> None:
        try:
            with self._index.transaction() as conn:
                self._index.drop_pending(conn, token)
        except ViscnnError:
            pass  # harmless: an intent is only used when its sha256 matches a file; vacuum removes it

    @staticmethod
    def _unlink(path: Path | None) -> None:
        """Remove a stored file (never a folder someone put in its place)."""
        if path is not None and (path.is_symlink() or not path.is_dir()):
            path.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------

    def _verify(self, row: Row | None, full: bool, read: bool) -> tuple[Row, Path, bytes | None] | None:
        """(row, path, bytes if `read`) if the row's file has its size (and with `full`, its sha256)."""
        path = self._row_path(row) if row is not None else None
        if row is None or path is None:
            return None
        try:
            if read:
                data = path.read_bytes()
                ok = len(data) == row.size and hashlib.sha256(data).hexdigest() == row.sha256
                return (row, path, data) if ok else None
            if not path.is_file() or path.stat().st_size != row.size:
                return None
            return (row, path, None) if not full or _sha256_file(path) == row.sha256 else None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def _settle(self, conn: sqlite3.Connection, row: Row, full: bool,
                read: bool) -> tuple[Row, Path, bytes | None] | None:
        """Holding the write lock, for a row whose file failed a check: keep it, recover it, or drop it.

        A writer killed after renaming its file into place but before committing its row leaves the new
        file under the old row, and its intent in `pending`: the intent whose sha256 the file has becomes
        the entry. Otherwise the row (and its damaged file) is dropped.
        """
        intents = self._index.pending(row.kind, row.key)
        found = self._verify(row, full or bool(intents), read)  # a recovered file may have the old size
        if found is not None:
            return found
        for token, _, intent in intents:
            found = self._verify(intent, full=True, read=read)
            if found is not None:
                self._index.upsert(conn, intent)
                self._index.drop_pending(conn, token)
                if intent.path != row.path:
                    self._unlink(self._row_path(row))
                return found
        self._index.delete(conn, row.kind, row.key)
        self._unlink(self._row_path(row))
        return None

    def _lookup(self, kind: str, key: str, full: bool, read: bool) -> tuple[Row, Path, bytes | None] | None:
        """The row, path (and bytes if `read`) of a verified entry; see `_settle` for a failed check."""
        check_kind(kind)
        check_key(key)
        row = self._index.get(kind, key)
        if row is None:
            return None
        found = self._verify(row, full, read)
        if found is not None and (full or not self._index.pending(kind, key)):
            return found
        # A bad file, a writer replaced it since we read the row, or (size-only check) a write of this
        # entry is in flight or crashed: look again holding the write lock.
        with self._index.transaction() as conn:
            row = self._index.get(kind, key)
            return self._settle(conn, row, full, read) if row is not None else None

    def get_path(self, kind: str, key: str) -> Path | None:
        """The path of (kind, key) if stored and its size and sha256 still match, else None.

        A damaged or missing file drops the entry. The file stays valid until the entry is overwritten
        (atomically) or deleted.
        """
        found = self._lookup(kind, key, full=True, read=False)
        return found[1] if found else None

    def get_bytes(self, kind: str, key: str) -> bytes | None:
        """The verified bytes of (kind, key), or None (a damaged file drops the entry)."""
        found = self._lookup(kind, key, full=True, read=True)
        return found[2] if found else None

    def meta(self, kind: str, key: str) -> dict[str, Any] | None:
        """The meta dict of (kind, key), or None if absent or its file is missing or of the wrong size."""
        found = self._lookup(kind, key, full=False, read=False)
        return json.loads(found[0].meta) if found else None

    def __contains__(self, item: tuple[str, str]) -> bool:
        """`(kind, key) in store`: the entry exists and its file has the recorded size (not hashed)."""
        kind, key = item
        return self._lookup(kind, key, full=False, read=False) is not None

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Every entry (of one kind) as the index records it, ordered by kind then key (files not checked)."""
        if kind is not None:
            check_kind(kind)
        return [Entry(row.kind, row.key, self.root / row.path, row.size, row.sha256, row.created,
                      json.loads(row.meta)) for row in self._index.rows(kind)]

    # -- removing ------------------------------------------------------------------------------

    def delete(self, kind: str, key: str) -> bool:
        """Remove (kind, key) and its file; True if it was there."""
        check_kind(kind)
        check_key(key)
        with self._index.transaction() as conn:
            row = self._index.get(kind, key)
            if row is None:
                return False
            self._index.delete(conn, kind, key)
            self._unlink(self._row_path(row))
        return True

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of one kind) and its file; returns how many."""
        if kind is not None:
            check_kind(kind)
        with self._index.transaction() as conn:
            rows = self._index.rows(kind)
            for row in rows:
                self._index.delete(conn, row.kind, row.key)
                self._unlink(self._row_path(row))
        return len(rows)

    @staticmethod
    def _drop_temp(path: Path, cutoff: float) -> int:
        """Remove a temp file whose writer is dead (or that is older than `cutoff`); 1 if removed."""
        pid_text = path.name.split(TEMP, 1)[1].split("-", 1)[0]
        try:
            if _writer_gone(int(pid_text) if pid_text.isdigit() else 0, path.stat().st_mtime, cutoff):
                path.unlink()
                return 1
        except FileNotFoundError:
            pass  # its writer finished with it meanwhile
        return 0

    def _files(self) -> Iterator[tuple[str, Path]]:
        """(relative path, path) of every file in the kinds' folders (stored files and temp files)."""
        for kind_dir in _folders(self.root):
            if KIND.fullmatch(kind_dir.name):
                for prefix_dir in _folders(kind_dir):
                    with os.scandir(prefix_dir) as entries:
                        for entry in entries:
                            if entry.is_file(follow_symlinks=False):
                                yield f"{kind_dir.name}/{prefix_dir.name}/{entry.name}", Path(entry.path)

    def sweep(self, *, temp_age: float = TEMP_AGE) -> int:
        """Remove the temp files of killed writes: of writers that are gone, or older than `temp_age` s (a live
        writer's file is kept). Runs when the store opens; returns how many it removed."""
        cutoff = time.time() - temp_age
        try:
            return sum(self._drop_temp(path, cutoff) for _, path in self._files() if TEMP in path.name)
        except OSError:  # a folder removed meanwhile (another process clearing the store): sweep next time
            return 0

    def vacuum(self, *, temp_age: float = TEMP_AGE, verify: bool = False) -> Vacuumed:
        """Tidy up after crashes and outside meddling; returns what it removed.

        Rows whose file is missing or of the wrong size (with `verify`, also a wrong sha256) are recovered
        from a crashed write's intent or dropped; then intents and temp files of dead writers (or older
        than `temp_age` s) and files no row names are removed.
        """
        cutoff = time.time() - temp_age
        temp_files = orphan_files = dropped_rows = stale_intents = 0
        with self._index.transaction() as conn:
            for row in self._index.rows():
                dropped_rows += self._settle(conn, row, full=verify, read=False) is None
            for token, pid, intent in self._index.pending():
                if _writer_gone(pid, intent.created, cutoff):
                    self._index.drop_pending(conn, token)
                    stale_intents += 1
            known = {row.path for row in self._index.rows()}
            for rel, path in self._files():
                if TEMP in path.name:
                    temp_files += self._drop_temp(path, cutoff)
                elif rel not in known:
                    path.unlink(missing_ok=True)
                    orphan_files += 1
        return Vacuumed(temp_files, orphan_files, dropped_rows, stale_intents)
