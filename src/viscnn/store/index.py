"""The store's SQLite index: one row per (kind, key) naming a file and how to verify it.

Table `entries` holds the rows; table `pending` holds the row each write in flight is about to
commit (its intent), so a writer killed between renaming its file into place and committing can be
recovered from: the file's sha256 matches the intent, which then becomes the entry.

WAL mode, so readers never wait for a writer; writers take the database's write lock with
`BEGIN IMMEDIATE` and wait for each other up to `timeout` seconds. Each thread of each process
gets its own connection (a connection is never carried across `fork`).
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from viscnn.errors import ViscnnError

SCHEMA_VERSION = 1
# the columns of an entry, in `Row` order: the committed table and the intents table both hold them
_ROW = (("kind", "TEXT"), ("key", "TEXT"), ("path", "TEXT"), ("size", "INTEGER"), ("sha256", "TEXT"),
        ("created", "REAL"), ("meta", "TEXT"))
_ROW_SQL = ",\n".join(f"    {name} {sql_type} NOT NULL" for name, sql_type in _ROW)
_SCHEMA = f"""
CREATE TABLE entries (
{_ROW_SQL},
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE pending (
    token TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
{_ROW_SQL}
);
CREATE INDEX pending_entry ON pending (kind, key);
"""
_COLUMNS = ", ".join(name for name, _ in _ROW)
_INHERITED: list[sqlite3.Connection] = []  # a parent's connections, kept open in a forked child: never touched


class Row(NamedTuple):
    """One index row; `path` is relative to the store root, with '/' separators."""

    kind: str
    key: str
    path: str
    size: int
    sha256: str
    created: float
    meta: str


class Index:
    """The SQLite file at `path`: opened (created if absent) and checked on construction."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._reset()
        self._init_schema()

    # -- connections ---------------------------------------------------------------------------

    def _reset(self) -> None:
        _INHERITED.extend(getattr(self, "_connections", ()))
        self._pid = os.getpid()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours to use
            self._reset()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._guard():
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this process opened (the index reopens on next use)."""
        if self._pid != os.getpid():
            self._reset()
            return
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __del__(self) -> None:
        # sqlite3 connections sit in reference cycles (their statement cache), so without this they
        # (and their file handles) would live until the next garbage collection.
        if getattr(self, "_pid", None) == os.getpid():
            for conn in getattr(self, "_connections", ()):
                conn.close()

    def _init_schema(self) -> None:
        conn = self._conn()
        deadline = time.monotonic() + self.timeout
        while True:  # switching to WAL needs an exclusive lock, and SQLite does not wait for it: retry
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.Error as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error(exc) from exc
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise ViscnnError(f"store index {self.path} cannot use WAL mode (journal mode {mode}); "
                              "put the store on a local disk")
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise ViscnnError(f"store index {self.path} is not a viscnn store index of version "
                                  f"{SCHEMA_VERSION} (found version {version}); delete it to start afresh")

    # -- errors and transactions ---------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite errors into one-line ViscnnErrors naming the index file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> ViscnnError:
        text = str(exc)
        if any(word in text for word in ("not a database", "malformed", "corrupt")):
            return ViscnnError(f"store index {self.path} is corrupt ({text}); delete it and viscnn starts an "
                               "empty index (cached results are then recomputed)")
        if "locked" in text or "busy" in text:
            return ViscnnError(f"store index {self.path} stayed locked by another process for more than "
                               f"{self.timeout:g} s")
        if "readonly" in text or "unable to open" in text:
            return ViscnnError(f"cannot write store index {self.path}: {text}")
        return ViscnnError(f"store index {self.path}: {text}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock: no other writer runs until the block commits (or rolls back)."""
        conn = self._conn()
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- rows ----------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Row | None:
        """The row for (kind, key), or None."""
        with self._guard():
            found = self._conn().execute(f"SELECT {_COLUMNS} FROM entries WHERE kind=? AND key=?",
                                         (kind, key)).fetchone()
        return Row(*found) if found else None

    def rows(self, kind: str | None = None) -> list[Row]:
        """All rows (of one kind), ordered by kind then key."""
        sql = f"SELECT {_COLUMNS} FROM entries"
        args: tuple[str, ...] = ()
        if kind is not None:
            sql, args = sql + " WHERE kind=?", (kind,)
        with self._guard():
            found = self._conn().execute(sql + " ORDER BY kind, key", args).fetchall()
        return [Row(*values) for values in found]

    def upsert(self, conn: sqlite3.Connection, row: Row) -> None:
        """Insert or replace the row for (row.kind, row.key); call inside `transaction()`."""
        conn.execute(f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(row))

    def delete(self, conn: sqlite3.Connection, kind: str, key: str) -> None:
        """Drop the row for (kind, key); call inside `transaction()`."""
        conn.execute("DELETE FROM entries WHERE kind=? AND key=?", (kind, key))

    # -- intents of writes in flight -----------------------------------------------------------

    def add_pending(self, token: str, row: Row) -> None:
        """Record (and commit at once) the row a write is about to commit, before it renames its file."""
        with self._guard():
            self._conn().execute(f"INSERT INTO pending (token, pid, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (token, os.getpid(), *row))

    def pending(self, kind: str | None = None, key: str | None = None) -> list[tuple[str, int, Row]]:
        """(token, pid, row) of every intent (for one entry), oldest first."""
        sql = f"SELECT token, pid, {_COLUMNS} FROM pending"
        args: tuple[str | None, ...] = ()
        if kind is not None:
            sql, args = sql + " WHERE kind=? AND key=?", (kind, key)
        with self._guard():
            found = self._conn().execute(sql + " ORDER BY created", args).fetchall()
        return [(token, pid, Row(*values)) for token, pid, *values in found]

    def drop_pending(self, conn: sqlite3.Connection, token: str) -> None:
        """Forget one intent (its write committed or died); call inside `transaction()`."""
        conn.execute("DELETE FROM pending WHERE token=?", (token,))
