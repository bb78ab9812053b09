"""Small shared helpers: atomic file/dir writes, file hashing, markdown tables, number text."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import math
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it into place on success.

    An exception inside the ``with`` block removes the temporary file, so an interrupted
    or failed run never leaves a half-written file that looks complete.
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place when the block succeeds.

    Use for writers that want a file name rather than a handle (e.g. ``Table.write``).
    The temporary name keeps the final suffix so format inference still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final directory. If it exists and is non-empty, ``overwrite`` must be true.
    overwrite : bool
        Replace an existing directory (only after the new one is complete).
    """
    from clumpdet.errors import InputError

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise InputError(path, "output directory exists and is not empty (use --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: str | os.PathLike, *, length: int = 12) -> str:
    """Hex SHA-256 of a file's bytes, truncated to ``length`` characters."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def load_torch_file(path: str | os.PathLike, *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU with one-line errors.

    Nothing executable is unpickled: only tensors and plain containers are accepted.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file is, for messages ("checkpoint", "weights file" ...).

    Raises
    ------
    CheckpointError
        ``"<path>: <what> not found"`` or ``"<path>: not a readable <what> (<reason>)"``.
    """
    import torch

    from clumpdet.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle of foreign objects
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CheckpointError(path, f"not a readable {what} ({first})") from None


def markdown_table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    fmt: Callable[[Any], str] | None = None,
) -> str:
    """Render a GitHub-flavoured markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        One sequence of cells per row, as long as ``header``.
    fmt : callable, optional
        Turns a cell into text; default: floats with 3 decimals (``"nan"`` kept), others ``str``.

    Returns
    -------
    str
        The table, one line per row, no trailing newline.

    Raises
    ------
    ValueError
        A row with a different number of cells from ``header``.
    """
    fmt = fmt or _format_cell
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for i, row in enumerate(rows):
        cells = [fmt(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"row {i}: {len(cells)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_number(value: Any, *, digits: int = 3, missing: str = "n/a") -> str:
    """A metric as text: fixed-point numbers, ``missing`` for None and non-finite values.

    Parameters
    ----------
    value : any
        A number (int, float, numpy scalar), None, or text (returned unchanged).
    digits : int
        Decimals.
    missing : str
        Text for None, NaN and infinities.

    Returns
    -------
    str
    """
    if value is None:
        return missing
    if isinstance(value, str):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else missing


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The shell command that reruns this script: ``python <script> <arguments>``, quoted.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (those a tool's ``main(argv)`` was given); default ``sys.argv[1:]``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *args])


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose names import on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : mapping of str to str
        Exported name -> module defining it (imported, and the value cached in the package,
        the first time the name is asked for).

    Returns
    -------
    (callable, callable)
        Assign them to the package's ``__getattr__`` and ``__dir__``.
    """

    def getattr_(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return getattr_, dir_
