"""Result store: one parquet file per finished job, keyed by a fingerprint of its inputs.

A sweep stores each job's DataFrame as soon as it finishes, so an interrupted sweep resumes by
computing only the keys that are missing. The key is a hash of everything the result depends on
(model, workload, run settings, seed, replication, capsim version), so a changed model never
reuses a stale result: it simply has a different key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import capsim

__all__ = ["NullStore", "ResultStore", "fingerprint"]

_FORMAT = 1  # bump to invalidate every stored result when the stored layout/meaning changes
_KEY = re.compile(r"[0-9a-f]{64}")


def _canon(obj: object) -> object:
    """A JSON-able, type-tagged encoding that depends only on values (never on id, hash or repr).

    Every list in the output starts with a tag, so 1, 1.0, True and "1" all encode differently.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):  # also np.float64; hex is exact, and handles inf/nan
        return ["float", float.hex(float(obj))]
    scalar = isinstance(obj, np.bool_ | np.integer | np.floating)
    if scalar and not isinstance(obj.item(), np.generic):  # np.longdouble: no exact Python twin
        return _canon(obj.item())  # np.int64(5) means the same model as 5
    if isinstance(obj, np.ndarray):
        head = ["ndarray", _canon(np.lib.format.dtype_to_descr(obj.dtype)), list(obj.shape)]
        if obj.dtype.hasobject:  # bytes would be pointers: encode the elements instead
            return [*head, [_canon(x) for x in obj.ravel().tolist()]]
        return [*head, hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()]
    if isinstance(obj, np.random.SeedSequence):
        return ["SeedSequence", _canon(obj.entropy), _canon(obj.spawn_key), obj.pool_size]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        fields = [[f.name, _canon(getattr(obj, f.name))] for f in dataclasses.fields(obj)]
        return ["dataclass", name, fields]
    if isinstance(obj, tuple | list):
        return ["seq", *(_canon(x) for x in obj)]
    if isinstance(obj, dict):
        items = [[_canon(k), _canon(v)] for k, v in obj.items()]
        return ["dict", *sorted(items, key=lambda kv: _dumps(kv[0]))]
    raise TypeError(f"fingerprint: cannot encode object of type {type(obj).__qualname__}")


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def fingerprint(*parts: object) -> str:
    """sha256 hex digest of a canonical encoding of ``parts``: stable across processes/runs."""
    return hashlib.sha256(_dumps(_canon(list(parts))).encode("ascii")).hexdigest()


class ResultStore:
    """Parquet files at ``path/<key[:2]>/<key>.parquet``; ``ResultStore(None)`` stores nothing.

    Writes are atomic (temp file + ``os.replace``), so a crash never leaves a readable partial
    result; an unreadable file is warned about, removed and reported as missing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = "results") -> None:
        self.path = None if path is None else Path(path)  # created on the first put()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({None if self.path is None else str(self.path)!r})"

    def key(self, **parts: object) -> str:
        """Key of a job: a fingerprint of its named inputs plus the capsim version."""
        return fingerprint(_FORMAT, capsim.__version__, parts)

    def _file(self, key: str) -> Path | None:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"ResultStore: not a store key (64 hex digits): {key!r}")
        return None if self.path is None else self.path / key[:2] / f"{key}.parquet"

    def get(self, key: str) -> pd.DataFrame | None:
        """The stored frame, or None if missing or unreadable (then it is recomputed)."""
        file = self._file(key)
        if file is None or not file.is_file():
            return None
        try:
            return pq.read_table(file).to_pandas()
        except FileNotFoundError:  # removed meanwhile (clear() from elsewhere)
            return None
        except Exception as exc:  # any failure to read means: compute it again
            warnings.warn(
                f"ResultStore: unreadable result {file} ({type(exc).__name__}: {exc}); "
                "removed, it will be recomputed", RuntimeWarning, stacklevel=2,
            )
            file.unlink(missing_ok=True)
            return None

    def put(self, key: str, df: pd.DataFrame) -> None:
        """Store ``df`` atomically. The index is not kept: an unnamed one is dropped, a named
        one becomes columns (results are tidy frames, rows are identified by columns)."""
        file = self._file(key)
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"ResultStore.put: expected a DataFrame, got {type(df).__qualname__}")
        bad = [c for c in df.columns if not isinstance(c, str)]
        if bad:  # parquet would silently turn them into strings
            raise TypeError(f"ResultStore.put: column names must be str, got {bad!r}")
        if file is None:
            return
        df = df.reset_index(drop=all(name is None for name in df.index.names))
        table = pa.Table.from_pandas(df, preserve_index=False)  # convert before touching disk
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)

    def __contains__(self, key: str) -> bool:
        """Cheap existence check; ``get()`` may still return None if the file is corrupt."""
        file = self._file(key)
        return file is not None and file.is_file()

    def keys(self) -> list[str]:
        """Stored keys, sorted."""
        if self.path is None or not self.path.is_dir():
            return []
        return sorted(f.stem for f in self.path.glob("??/*.parquet") if _KEY.fullmatch(f.stem))

    def __len__(self) -> int:
        return len(self.keys())

    def clear(self) -> None:
        """Remove stored results and leftover temp files (only files this store owns)."""
        if self.path is None or not self.path.is_dir():
            return
        for shard in self.path.glob("??"):
            if shard.is_dir():
                for f in [*shard.glob("*.parquet"), *shard.glob(".*.tmp")]:
                    f.unlink(missing_ok=True)
                if not any(shard.iterdir()):
                    shard.rmdir()


class NullStore(ResultStore):
    """A store that keeps nothing: for users who opt out of caching (same interface)."""

    def __init__(self) -> None:
        super().__init__(None)
