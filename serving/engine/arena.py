"""Shared memory for input tensors: one arena per front end, mapped by its engine.

The front end creates a file on a tmpfs (``/dev/shm`` on Linux), reserves its bytes
(``posix_fallocate``: a full tmpfs fails here, not as a SIGBUS on some later write) and
maps it; the engine maps it too when the front end says hello, after which the front
end unlinks it, so the memory goes back to the system when both processes have let go,
however they end. A request's tensors are copied into the arena once (``place``); the
engine reads them in place (``MappedArena.array``) and its Batcher concatenates them
into the batch, as it would in one process. Only the front end allocates and frees, so
no lock is shared: a request's bytes are freed when the engine's one answer to it
arrives (or the engine is gone).

We map a file ourselves rather than use ``multiprocessing.shared_memory``: before Python
3.13 every process that attaches a segment registers it with a resource tracker that
unlinks it (with a warning) when that process exits, whoever created it.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import math
import mmap
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.engine.wire import Tensor, inline_tensor

ALIGN = 64  # every tensor starts on a cache line


def arena_directory() -> str:
    """A tmpfs where there is one, else the temporary directory (page cache backed)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else tempfile.gettempdir()


def _aligned(nbytes: int) -> int:
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Placed:
    """One request's tensors: where each is, the frames of those sent inline, and the
    arena block to free once the engine has answered."""

    tensors: list[Tensor]
    frames: list[Any] = field(default_factory=list)
    block: tuple[int, int] | None = None  # (offset, length)


class Arena:
    """The front end's side: allocate, copy in, free (first fit, neighbours merged)."""

    def __init__(self, size: int, directory: str | None = None) -> None:
        fd, self.path = tempfile.mkstemp(prefix="modelserve-arena-",
                                         dir=directory or arena_directory())
        try:
            _reserve(fd, size)
            self._map = mmap.mmap(fd, size)
        except BaseException:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)
        self.size = size
        self.used = 0
        self._free: list[tuple[int, int]] = [(0, size)]  # (offset, length), by offset

    def unlink(self) -> None:
        """The engine has mapped the file: its name is no longer needed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def alloc(self, nbytes: int) -> int | None:
        """An aligned block of ``nbytes``'s offset, or None when none is free."""
        nbytes = _aligned(nbytes)
        for i, (offset, length) in enumerate(self._free):
            if length >= nbytes:
                if length == nbytes:
                    del self._free[i]
                else:
                    self._free[i] = (offset + nbytes, length - nbytes)
                self.used += nbytes
                return offset
        return None

    def free(self, offset: int, nbytes: int) -> None:
        nbytes = _aligned(nbytes)
        self.used -= nbytes
        i = bisect.bisect(self._free, (offset, 0))
        end = offset + nbytes
        if i < len(self._free) and self._free[i][0] == end:  # merge with the next block
            end += self._free.pop(i)[1]
        if i > 0 and sum(self._free[i - 1]) == offset:  # and with the previous one
            offset = self._free[i - 1][0]
            self._free[i - 1] = (offset, end - offset)
        else:
            self._free.insert(i, (offset, end - offset))

    def place(self, arrays: dict[str, np.ndarray]) -> Placed:
        """Copy the numeric tensors into one block (the one copy on the way in); strings,
        and everything when the arena is full, go as frames."""
        sizes = {k: _aligned(a.nbytes) for k, a in arrays.items() if not a.dtype.hasobject}
        total = sum(sizes.values())
        start = self.alloc(total) if total else None
        placed = Placed([], block=None if start is None else (start, total))
        offset = start
        for name, array in arrays.items():
            if offset is None or name not in sizes:
                placed.tensors.append(inline_tensor(name, array, placed.frames))
                continue
            view = np.frombuffer(self._map, dtype=array.dtype, count=array.size, offset=offset)
            np.copyto(view.reshape(array.shape), array, casting="no")
            placed.tensors.append([name, array.dtype.str, list(array.shape), offset])
            offset += sizes[name]
        return placed

    def close(self) -> None:
        self.unlink()
        self._map.close()


class MappedArena:
    """The engine's side: a front end's arena, read in place."""

    def __init__(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def array(self, offset: int, dtype: str, shape: list[int]) -> np.ndarray:
        count = math.prod(shape)
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).reshape(shape)


def _reserve(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise  # ENOSPC: the tmpfs cannot hold it
        os.ftruncate(fd, size)
