"""All file I/O of the workbench: atomic writes, JSONL, hashing.

Library functions elsewhere are pure over records; whenever something touches
the disk it goes through here so that every write is atomic (write to a temp
file in the same folder, fsync, rename) and a crash never leaves a half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave temp files behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Best-effort conversion for json.dumps (dataclasses, paths, sets, numpy scalars)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except Exception:
            pass
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    lines = [json.dumps(to_jsonable(r), ensure_ascii=False) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def iter_jsonl_numbered(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); a malformed line raises ValueError naming file and line number."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield lineno, rec


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield records; a malformed line raises ValueError naming file and line number."""
    for _, rec in iter_jsonl_numbered(path):
        yield rec


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return list(iter_jsonl(path))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any, n: int | None = None) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys): names caches and runs."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    return digest[:n] if n else digest


BIG_FILE = 64 << 20  # files above this are fingerprinted by size+mtime, not hashed (checkpoints)


def file_fingerprint(path: str | os.PathLike) -> str:
    """Content fingerprint of a file or a folder (recursively); big files by size and mtime."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return stable_hash([(str(p.relative_to(path)), file_fingerprint(p)) for p in files])
    st = path.stat()
    if st.st_size > BIG_FILE:
        return f"size={st.st_size},mtime={int(st.st_mtime)}"
    return "sha256:" + sha256_file(path)
