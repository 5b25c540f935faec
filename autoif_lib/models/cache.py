"""Persistent generation cache: one SQLite file, one row per completion.

Keyed by model identity, sampling params, messages, seed and sample index, so a
re-run of a stage costs nothing and an interrupted one resumes: every finished
batch is committed before the next starts. SQLite (WAL) gives atomic commits
and survives kill -9; several processes may share the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable


class GenerationCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "meta TEXT, created REAL)")
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(keys), 500):  # SQLite caps bound parameters
                chunk = keys[i:i + 500]
                q = f"SELECT key, text FROM completions WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(dict(self._db.execute(q, chunk).fetchall()))
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
