"""The SQLite file under the store: opened private (0600) in WAL mode, created or migrated to
the current schema, with a bounded wait for the write lock and every failure turned into a
``StoreError`` that says what to do. ``Store`` (store.py) builds the conversations on it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from llmost_cli.errors import StoreError
from llmost_cli.paths import ensure_private_dir
from llmost_cli.store import schema
from llmost_cli.store.schema import SCHEMA_VERSION

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction, by default


def decode_cell(data: bytes) -> str:
    # A cell that is not valid UTF-8 (written by something else) reads as text with
    # surrogate escapes instead of failing the whole query.
    return data.decode("utf-8", "surrogateescape")


class Database:
    """One SQLite connection to the store's file, and its transactions."""

    def __init__(self, path: Path, *, busy_timeout: float | None = None) -> None:
        self.path = Path(path)
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    # -- opening, errors, transactions -------------------------------------------------------

    def _error(self, exc: BaseException) -> StoreError:
        where = f"conversation store {self.path}"
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            return StoreError(
                f"cannot open {where}: {reason}",
                hint=f"check the permissions of {self.path} and {self.path.parent}",
            )
        if isinstance(exc, UnicodeEncodeError):
            return StoreError(f"cannot save text that is not valid UTF-8 in {where}")
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreError(
                f"{where} is locked by another process (waited {self.busy_timeout:g} s)",
                hint="try again when the other llmost has finished",
            )
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return StoreError(
                f"{where} is damaged: {exc}",
                hint="move the file aside and llmost will start a new one",
            )
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return StoreError(
                f"cannot write {where}: {exc}",
                hint=f"check the permissions of {self.path} and {self.path.parent}",
            )
        if code == sqlite3.SQLITE_FULL:
            return StoreError(f"cannot write {where}: disk full", hint="free some disk space")
        return StoreError(f"{where}: {exc}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # misuse of the API (closed store, wrong bindings): a bug, not a user problem
        except (sqlite3.DatabaseError, OSError, UnicodeEncodeError) as exc:
            raise self._error(exc) from exc

    def _open(self) -> sqlite3.Connection:
        with self._errors():
            ensure_private_dir(self.path.parent)
            # create the file ourselves so that it is 0600 from the start; SQLite gives the
            # -wal and -shm files the same mode
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)
            except OSError:
                pass  # not our file to change
            finally:
                os.close(fd)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.text_factory = decode_cell
            try:
                self._setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no committed row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        self._check_version(version)
        with self._transaction(conn):
            # re-read: another process may have created or migrated the file meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    raise StoreError(
                        f"{self.path} is a SQLite database but not an llmost conversation store",
                        hint="move it aside or point llmost at another data directory",
                    )
            schema.migrate(conn, version)

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"conversation store {self.path} was written by a newer llmost "
                f"(schema {version}, this version knows {SCHEMA_VERSION})",
                hint="upgrade llmost",
            )

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock; retry while other processes
        # open the same new file rather than fail on the first "database is locked".
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), self._transaction(self._db()) as conn:
            yield conn

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the conversation store is closed")
        return self._conn

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's transaction before giving up."""
        with self._errors():
            self._db().execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        self.busy_timeout = seconds

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
