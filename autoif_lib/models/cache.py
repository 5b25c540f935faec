"""Persistent generation cache: one SQLite file, one row per completion.

Keyed by model identity, sampling params, messages, seed and sample index, so a
re-run of a stage costs nothing and an interrupted one resumes: every finished
batch is committed before the next starts. SQLite (WAL) gives atomic commits
and survives kill -9; several processes *on one machine* may share the file.

WAL needs shared memory between the processes that use a database, so it does not
work across machines on a network filesystem (NFS, Lustre, GPFS). Under Slurm
(``SLURM_JOB_ID`` set) every job therefore writes a file of its own,
``<cache dir>/nodes/<host>-<job id>.sqlite`` (rollback journal, one job's processes
only), and reads the main ``generations.sqlite`` as an immutable snapshot for what it
does not have. A sweep's collect job merges the job files into the main file
(:func:`merge_node_caches`, ``INSERT OR IGNORE``: an existing completion is never
replaced) and checkpoints it, so the next jobs see everything in that snapshot.
``AUTOIF_CACHE_PER_JOB=1`` / ``0`` forces the per-job files on or off.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

MAIN_CACHE = "generations.sqlite"
NODE_DIR = "nodes"
PER_JOB_ENV = "AUTOIF_CACHE_PER_JOB"

_SCHEMA = "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT NOT NULL, meta TEXT, created REAL)"


def per_job(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes a per-job cache file: under Slurm, unless ``AUTOIF_CACHE_PER_JOB`` says."""
    env = os.environ if env is None else env
    forced = env.get(PER_JOB_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool(env.get("SLURM_JOB_ID"))


def cache_file(cache_dir: str | Path, env: Mapping[str, str] | None = None, host: str | None = None) -> Path:
    """The cache file a process of this outputs root writes: ``<cache_dir>/generations.sqlite``, or under
    Slurm ``<cache_dir>/nodes/<host>-<job id>.sqlite`` (one writer machine per file)."""
    env = os.environ if env is None else env
    cache_dir = Path(cache_dir)
    if not per_job(env):
        return cache_dir / MAIN_CACHE
    job = env.get("SLURM_JOB_ID") or str(os.getpid())
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{host or socket.gethostname()}-{job}")
    return cache_dir / NODE_DIR / f"{name}.sqlite"


def main_cache_of(path: str | Path) -> Path | None:
    """For a per-job file (``<dir>/nodes/x.sqlite``) the main cache it falls back on; None for a main file."""
    path = Path(path)
    return path.parent.parent / MAIN_CACHE if path.parent.name == NODE_DIR else None


class GenerationCache:
    def __init__(self, path: str | Path, fallback: str | Path | None = None):
        """``fallback``: a cache read (never written) for keys this one lacks; by default the main cache of a
        per-job file (see :func:`main_cache_of`)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        node = main_cache_of(self.path) is not None
        # a per-job file has one machine's processes: a rollback journal, whose locks hold on network filesystems
        self._db.execute("PRAGMA journal_mode=" + ("DELETE" if node else "WAL"))
        self._db.execute("PRAGMA synchronous=" + ("FULL" if node else "NORMAL"))
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._fallback_path = Path(fallback) if fallback else main_cache_of(self.path)
        self._fallback: sqlite3.Connection | None = None

    def _open_fallback(self) -> sqlite3.Connection | None:
        p = self._fallback_path
        if self._fallback is None and p is not None and p.exists():
            # immutable: no locks and no -shm (which another machine's WAL could not share); it sees what the
            # last checkpoint wrote into the file, which is all of it after a collect job's merge
            self._fallback = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                             check_same_thread=False)
        return self._fallback

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(keys), 500):  # SQLite caps bound parameters
                chunk = keys[i:i + 500]
                q = f"SELECT key, text FROM completions WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(dict(self._db.execute(q, chunk).fetchall()))
            missing = [k for k in keys if k not in out]
            if missing and self._fallback_path is not None:
                try:
                    fb = self._open_fallback()
                    for i in range(0, len(missing), 500):
                        if fb is None:
                            break
                        chunk = missing[i:i + 500]
                        q = f"SELECT key, text FROM completions WHERE key IN ({','.join('?' * len(chunk))})"
                        out.update(dict(fb.execute(q, chunk).fetchall()))
                except sqlite3.DatabaseError:  # the main file changed under the snapshot: regenerate instead
                    self._fallback_path = None
        return out

    def put_many(self, items: Iterable[tuple[str, str, dict | None]]) -> None:
        now = time.time()
        rows = [(k, t, json.dumps(m) if m else None, now) for k, t, m in items]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)", rows)
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._fallback is not None:
                self._fallback.close()
                self._fallback = None


def merge_node_caches(cache_dir: str | Path) -> dict:
    """Copy every per-job file's completions under ``<cache_dir>/nodes/`` into ``<cache_dir>/generations.sqlite``
    (``INSERT OR IGNORE``: what the main file has stays), then checkpoint it so immutable readers see all.
    The job files are kept (a job of another sweep may still be writing one); merging again adds nothing.
    Run it where nothing else writes the main file. Returns {"files", "added", "rows"}."""
    cache_dir = Path(cache_dir)
    files = sorted((cache_dir / NODE_DIR).glob("*.sqlite"))
    main = cache_dir / MAIN_CACHE
    if not files:
        return {"files": 0, "added": 0, "rows": None}
    GenerationCache(main).close()  # creates it (WAL, schema) when missing
    db = sqlite3.connect(main.resolve().as_uri(), uri=True, timeout=600)
    added = 0
    try:
        for f in files:
            before = db.total_changes
            db.execute("ATTACH DATABASE ? AS node", (f.resolve().as_uri() + "?mode=ro",))
            try:
                has = db.execute("SELECT 1 FROM node.sqlite_master WHERE type='table' AND name='completions'").fetchone()
                if has:
                    db.execute("INSERT OR IGNORE INTO main.completions (key, text, meta, created) "
                               "SELECT key, text, meta, created FROM node.completions")
                db.commit()
            finally:
                db.execute("DETACH DATABASE node")
            added += db.total_changes - before
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    finally:
        db.close()
    return {"files": len(files), "added": added, "rows": rows}
