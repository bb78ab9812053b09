"""Survey-scale catalogues: ``clumpdet catalogue CKPT INPUT... --out DIR``.

A run streams its inputs (files, folders, globs, or text/CSV lists of paths; one image may be
several single-band files grouped by ``band_files``), cuts them into shards of ``shard_size``
images, and runs each shard as one task, on a Dask cluster or in this process:

``DIR/shards/NNNNNN.parquet``
    The rows of shard ``NNNNNN`` (written atomically by the worker that ran it).
``DIR/shards/NNNNNN.inputs.txt``
    The shard's input list, one input per line (an input of several band files is its field
    key).
``DIR/manifest.json``
    The run's settings (checkpoint hash, options that change the rows) and every finished
    shard: its input count, the SHA-256 of its input list, the SHA-256 of its parquet file, its
    row count and the inputs that failed, with the reason. Rewritten atomically after each
    shard.
``DIR/failed.csv``
    ``image_id,input,reason`` of every input that could not be read or measured; the run goes
    on without them.
``DIR/catalogue.parquet`` (and ``catalogue.fits`` on request)
    All shards merged, sorted by ``image_id`` (the input's position in the input stream) and
    then by the catalogue's own row order within an image.

Rerunning the same command resumes: shards in the manifest whose parquet file still has the
recorded checksum are skipped; a shard whose input list differs from the recorded one, or a run
directory made with another checkpoint or other row-changing options, is refused with one line.
Every file is a function of the inputs and the settings only (no timestamps, host names or
paths of the run directory; parquet written with fixed options), so an interrupted and resumed
run writes byte-identical merged catalogues to an uninterrupted one.

Detector checkpoints give one row per detection (the columns of
:func:`clumpdet.inference.catalogue.build_catalogue`, plus ``input``); classifier checkpoints
give one row per galaxy with one column per output (``p_<label>``), so morphology and merger
catalogues are made the same way.

Each worker process loads the model once (a per-process cache keyed by the model settings), and
holds only one chunk of ``4 x batch_size`` images and one shard's rows at a time, so its memory
does not grow with the number of images.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.data.fits import FITS_SUFFIXES
from clumpdet.data.images import RASTER_SUFFIXES, ImageData
from clumpdet.errors import ConfigError, InputError
from clumpdet.utils import atomic_path, atomic_write

#: ``format`` tag of ``manifest.json``.
MANIFEST_FORMAT = "clumpdet-catalogue-run"
MANIFEST_VERSION = 1

#: Suffixes of files read as lists of inputs (one path a line, or a CSV with a path column).
LIST_SUFFIXES: tuple[str, ...] = (".txt", ".lst", ".list", ".csv")

#: CSV header names taken as the path column of a list file (case-insensitive).
PATH_COLUMNS: tuple[str, ...] = ("path", "file", "filename", "file_name", "image", "input")

#: Errors that make one input fail (recorded in failed.csv) rather than stop the run.
ITEM_ERRORS: tuple[type[BaseException], ...] = (InputError, OSError, ValueError, RuntimeError)

IMAGE_SUFFIXES = (*FITS_SUFFIXES, *RASTER_SUFFIXES)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a run.

    Attributes
    ----------
    key : str
        How the input is named in the catalogue's ``input`` column and in ``failed.csv``: its
        path, or for band-file groups ``<folder>/<field>``.
    paths : tuple of str
        The file(s) to read; several for a band-file group (in the model's band order).
    bands : tuple of str or None
        Band names of ``paths`` taken from the ``band_files`` pattern (None: from the file).
    error : str or None
        Why the input cannot be used (e.g. a band file missing from a group); it is then
        recorded as failed without being read.
    """

    key: str
    paths: tuple[str, ...]
    bands: tuple[str, ...] | None = None
    error: str | None = None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _walk(folder: Path) -> Iterator[str]:
    """Image files under ``folder``, recursively, in sorted order (names only are held)."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if _is_image(name):
                yield str(Path(root) / name)


def _read_list(path: Path) -> Iterator[str]:
    """Paths listed in a text file (one a line, ``#`` comments) or a CSV (a path column).

    Relative paths are taken relative to the list file's folder. The file is streamed.
    """
    base = path.parent

    def resolve(entry: str) -> str:
        entry = entry.strip()
        p = Path(entry).expanduser()
        return str(p if p.is_absolute() else base / p)

    with open(path, newline="", encoding="utf-8") as fh:
        if path.suffix.lower() != ".csv":
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield resolve(line)
            return
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip().lower() for h in header]
        col = next((names.index(c) for c in PATH_COLUMNS if c in names), None)
        if col is None:
            col = 0
            if header and header[0].strip() and _is_image(header[0].strip()):
                yield resolve(header[0])
        for lineno, row in enumerate(reader, 2):
            if not row or not "".join(row).strip():
                continue
            if col >= len(row):
                raise InputError(path, f"line {lineno} has no column {col + 1} (the path)")
            yield resolve(row[col])


def iter_paths(inputs: Sequence[str | Path]) -> Iterator[str]:
    """Stream the files named by ``inputs``, in a deterministic order.

    Parameters
    ----------
    inputs : sequence of str or Path
        Image files; folders (every FITS/PNG/JPEG file below, sorted); glob patterns (sorted
        matches, ``**`` recursive); or list files (``.txt``/``.lst``/``.list``: one path a
        line; ``.csv``: the ``path``/``file``/``filename`` column, else the first).

    Yields
    ------
    str
        One path per image file, never all held in memory (a glob or a folder holds its names
        only, to sort them).

    Raises
    ------
    InputError
        An input that is neither a file, a folder nor a glob with matches.
    """
    for spec in inputs:
        s = str(spec)
        p = Path(s).expanduser()
        if p.is_dir():
            yield from _walk(p)
        elif p.is_file():
            if p.name.lower().endswith(LIST_SUFFIXES):
                yield from _read_list(p)
            else:
                yield str(p)
        elif glob.has_magic(s):
            matches = sorted(m for m in glob.glob(s, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(s, "the pattern matches no file")
            yield from matches
        else:
            raise InputError(s, "no such file or folder")


class BandFiles:
    """Group single-band files into multi-band images by a file-name pattern.

    Parameters
    ----------
    pattern : str
        A file name (or path tail) with ``{field}`` and ``{band}`` placeholders, e.g.
        ``'{field}-{band}.fits'`` or SDSS ``'frame-{band}-{field}.fits.bz2'``; ``*`` matches
        any characters but ``/``. Without a ``/`` it is matched against the file name, else
        against the end of the path.
    bands : sequence of str
        Bands an image needs, in the model's order; files of other bands are skipped.

    Notes
    -----
    The band of each file is the one its name gives, whatever its header says (survey FILTER
    keywords can be wrong). Groups are emitted as soon as they are complete, so memory holds
    only the incomplete groups; inputs sorted by field (as ``{field}-{band}`` names sort) keep
    that to one group.
    """

    def __init__(self, pattern: str, bands: Sequence[str]) -> None:
        if "{field}" not in pattern or "{band}" not in pattern:
            raise ConfigError(f"--band-files {pattern!r} needs both {{field}} and {{band}}")
        self.pattern = pattern
        self.bands = tuple(bands)
        regex = ""
        for part in re.split(r"(\{field\}|\{band\}|\*)", pattern):
            if part == "{field}":
                regex += "(?P<field>[^/]+?)" if "(?P<field>" not in regex else "(?P=field)"
            elif part == "{band}":
                regex += "(?P<band>[^/]+?)" if "(?P<band>" not in regex else "(?P=band)"
            elif part == "*":
                regex += "[^/]*"
            else:
                regex += re.escape(part)
        self._regex = re.compile(("(?:^|/)" if "/" in pattern else "^") + regex + "$")

    def match(self, path: str) -> tuple[str, str] | None:
        """``(group key, band)`` of ``path``, or None when it does not fit the pattern."""
        posix = Path(path).as_posix()
        if "/" in self.pattern:
            m = self._regex.search(posix)
            prefix = posix[: m.start()] if m else ""
        else:
            m = self._regex.match(Path(path).name)
            prefix = Path(path).parent.as_posix() + "/" if m else ""
        if m is None:
            return None
        if m.start() > 0 and "/" in self.pattern:
            prefix += "/"
        return prefix + m.group("field"), m.group("band")

    def group(self, paths: Iterable[str]) -> Iterator[Item]:
        """Items of grouped band files, in the order their groups complete.

        Files that do not fit the pattern, repeated bands, and groups still incomplete at the
        end become items with an ``error`` (listed in ``failed.csv``).
        """
        pending: OrderedDict[str, dict[str, str]] = OrderedDict()
        for path in paths:
            hit = self.match(path)
            if hit is None:
                yield Item(path, (path,), error=f"does not match --band-files {self.pattern!r}")
                continue
            key, band = hit
            if band not in self.bands:
                continue
            group = pending.setdefault(key, {})
            if band in group:
                yield Item(path, (path,), error=f"band {band} of {key} given twice")
                continue
            group[band] = path
            if len(group) == len(self.bands):
                del pending[key]
                yield Item(key, tuple(group[b] for b in self.bands), bands=self.bands)
        for key, group in pending.items():
            missing = [b for b in self.bands if b not in group]
            yield Item(
                key,
                tuple(group[b] for b in self.bands if b in group),
                bands=tuple(b for b in self.bands if b in group),
                error=f"missing band file(s) {', '.join(missing)} (pattern {self.pattern!r})",
            )


def iter_items(
    inputs: Sequence[str | Path], *, band_files: str | None = None, bands: Sequence[str] = ()
) -> Iterator[Item]:
    """The images of a run: :func:`iter_paths`, grouped by :class:`BandFiles` if asked."""
    paths = iter_paths(inputs)
    if band_files:
        yield from BandFiles(band_files, bands).group(paths)
    else:
        for p in paths:
            yield Item(p, (p,))


def read_item(item: Item, *, bands: Sequence[str] | None, nan_policy: str = "median") -> ImageData:
    """Read one item into an :class:`ImageData` (band files stacked in ``item.bands`` order).

    Parameters
    ----------
    item : Item
    bands : sequence of str or None
        The model's bands: FITS planes are picked by name (PNG/JPEG keep their planes).
    nan_policy : str
        :func:`clumpdet.data.images.apply_nan_policy`.

    Raises
    ------
    InputError
        ``item.error``, or any read problem (one line naming the file).
    """
    from clumpdet.data.images import apply_nan_policy, read_image, select_bands

    if item.error:
        raise InputError(item.key, item.error)
    if item.bands is None:
        (path,) = item.paths
        raster = path.lower().endswith(RASTER_SUFFIXES)
        return read_image(path, bands=None if raster else bands, nan_policy=nan_policy)
    parts = [read_image(p, nan_policy="keep") for p in item.paths]
    for p, part in zip(item.paths, parts):
        if part.data.shape[0] != 1:
            raise InputError(p, f"--band-files expects one band per file, found {part.shape[0]}")
        if part.data.shape[1:] != parts[0].data.shape[1:]:
            raise InputError(
                p,
                f"shape {part.data.shape[1:]} differs from {parts[0].data.shape[1:]} of "
                f"{item.paths[0]} (band files of one field must have one shape)",
            )
    image = ImageData(
        data=np.concatenate([p.data for p in parts]),
        bands=tuple(item.bands),
        wcs=parts[0].wcs,
        header=parts[0].header,
        path=tuple(Path(p) for p in item.paths),
        band_names_known=True,
    )
    if bands is not None:
        image = select_bands(image, bands)
    return apply_nan_policy(image, nan_policy)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# models (loaded once per process)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build its model; hashable, so each process caches one."""

    checkpoint: str
    kind: str  # "detector" or "classifier"
    batch_size: int = 8
    tile_overlap: int = 48
    device: str = "cpu"
    pixel_scale: float | str | None = None
    score_threshold: float | None = None
    threads: int = 1


_RUNNERS: dict[ModelSpec, Any] = {}


def get_runner(spec: ModelSpec) -> Any:
    """This process's runner for ``spec``: built (model loaded) on first use, then reused."""
    runner = _RUNNERS.get(spec)
    if runner is None:
        _RUNNERS.clear()  # one model per process: memory stays bounded
        import torch

        torch.set_num_threads(max(1, int(spec.threads)))
        runner = (DetectorRunner if spec.kind == "detector" else ClassifierRunner)(spec)
        _RUNNERS[spec] = runner
    return runner


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, InputError):
        return exc.problem if getattr(exc, "problem", None) else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_all(
    items: Sequence[tuple[int, Item]],
    read: Callable[[Item], ImageData],
    failed: list[tuple[int, str, str]],
) -> list[tuple[int, Item, ImageData]]:
    out = []
    for iid, item in items:
        try:
            out.append((iid, item, read(item)))
        except ITEM_ERRORS as exc:
            failed.append((iid, item.key, _reason(exc)))
    return out


def _isolate(
    fn: Callable[[list[tuple[int, Item, ImageData]]], Any],
    batch: list[tuple[int, Item, ImageData]],
    failed: list[tuple[int, str, str]],
) -> list[Any]:
    """``fn(batch)``; when it fails on bad input, ``fn`` image by image, recording failures."""
    try:
        return [fn(batch)]
    except ITEM_ERRORS as exc:
        if len(batch) == 1:
            iid, item, _ = batch[0]
            failed.append((iid, item.key, _reason(exc)))
            return []
    out = []
    for one in batch:
        out += _isolate(fn, [one], failed)
    return out


class DetectorRunner:
    """Detections + photometry (:func:`~clumpdet.inference.catalogue.build_catalogue`)."""

    def __init__(self, spec: ModelSpec) -> None:
        from clumpdet.inference.predictor import Predictor

        self.spec = spec
        self.predictor = Predictor.from_checkpoint(
            spec.checkpoint,
            batch_size=spec.batch_size,
            tile_overlap=spec.tile_overlap,
            device=spec.device,
            pixel_scale=spec.pixel_scale,
            require_pixel_scale=True,
        )
        b = self.predictor.bundle
        thr = spec.score_threshold
        self.threshold = float(b.model_config.score_threshold if thr is None else thr)

    def read(self, item: Item) -> ImageData:
        return read_item(item, bands=self.predictor.bands)

    def _chunk(self, batch: list[tuple[int, Item, ImageData]], *, network_only: bool = False):
        from clumpdet.inference.catalogue import build_catalogue

        b = self.predictor.bundle
        images = [im for _, _, im in batch]
        dets = [d.above(self.threshold) for d in self.predictor.predict(images)]
        if network_only:
            return dets
        table = build_catalogue(
            images,
            dets,
            class_names=b.class_names,
            image_ids=[iid for iid, _, _ in batch],
            backbone=b.model_config.backbone.name,
            checkpoint_sha256=b.sha256,
            detection_kind=b.detection_kind,
        )
        keys = {iid: item.key for iid, item, _ in batch}
        table["input"] = [keys[int(i)] for i in table["image_id"]] if len(table) else []
        return table

    def run(
        self, items: Sequence[tuple[int, Item]], *, network_only: bool = False
    ) -> tuple[list[Any], list[tuple[int, str, str]]]:
        """Rows of ``items`` (``(image_id, Item)``), in chunks of ``4 x batch_size`` images.

        Returns
        -------
        tables : list of astropy Table
            One per chunk (detections ``list`` per chunk with ``network_only``).
        failed : list of (image_id, input, reason)
        """
        failed: list[tuple[int, str, str]] = []
        tables: list[Any] = []
        step = max(1, 4 * self.spec.batch_size)
        for start in range(0, len(items), step):
            batch = _read_all(items[start : start + step], self.read, failed)
            if batch:
                tables += _isolate(
                    lambda bt: self._chunk(bt, network_only=network_only), batch, failed
                )
        return tables, failed

    def meta(self) -> dict[str, str]:
        b = self.predictor.bundle
        return {
            "KIND": "detector",
            "BANDS": ",".join(b.preprocessing.bands),
            "DETKIND": b.detection_kind,
            "CKPTSHA": b.sha256,
            "SCORETHR": repr(self.threshold),
            "PIXSCALE": repr(float(b.pixel_scale)),
        }


def _column_name(label: str) -> str:
    return "p_" + re.sub(r"[^0-9A-Za-z_]+", "_", str(label)).strip("_")


class ClassifierRunner:
    """Per-galaxy predictions of a trained classifier (one row per input)."""

    def __init__(self, spec: ModelSpec) -> None:
        from clumpdet.checkpoints import load_classifier

        self.spec = spec
        self.bundle = load_classifier(spec.checkpoint, device=spec.device)
        names = self.bundle.label_names or tuple(f"out{k}" for k in range(1, 1000))
        self.columns = [_column_name(n) for n in names]

    def read(self, item: Item) -> ImageData:
        return read_item(item, bands=self.bundle.preprocessing.bands)

    def _chunk(self, batch: list[tuple[int, Item, ImageData]], *, network_only: bool = False):
        import torch
        from astropy.table import Table

        from clumpdet.tasks import predict_from_outputs

        b = self.bundle
        s = b.image_size
        xs = []
        for _, _, image in batch:
            if image.is_raster or not set(b.preprocessing.bands) <= set(image.bands):
                image = image.data  # matched by count, in order (as the detector does)
            x = torch.from_numpy(np.ascontiguousarray(b.preprocessing(image)))[None]
            if x.shape[-2:] != (s, s):
                x = torch.nn.functional.interpolate(
                    x, size=(s, s), mode="bilinear", antialias=True, align_corners=False
                )
            xs.append(x)
        with torch.inference_mode():
            out = b.model(torch.cat(xs).to(self.spec.device))
            p = predict_from_outputs(b.task, out, dirichlet=bool(b.model_config.dirichlet))
        p = p.float().cpu().numpy().astype(np.float64)
        if network_only:
            return p
        table = Table()
        table["image"] = [Path(item.paths[0]).name if item.paths else "" for _, item, _ in batch]
        table["image_id"] = np.array([iid for iid, _, _ in batch], dtype=np.int64)
        for k in range(p.shape[1]):
            table[self.columns[k] if k < len(self.columns) else f"p_out{k + 1}"] = p[:, k]
        table["task"] = [b.task] * len(batch)
        table["checkpoint_sha256"] = [b.sha256] * len(batch)
        table["input"] = [item.key for _, item, _ in batch]
        return table

    run = DetectorRunner.run

    def meta(self) -> dict[str, str]:
        return {
            "KIND": "classifier",
            "BANDS": ",".join(self.bundle.preprocessing.bands),
            "TASK": self.bundle.task,
            "CKPTSHA": self.bundle.sha256,
        }


# --------------------------------------------------------------------------------------------
# shards
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ShardTask:
    """One shard to run: its index, first image id, items and where to write."""

    index: int
    first_id: int
    items: list[Item]
    out: str
    spec: ModelSpec


def shard_name(index: int) -> str:
    """``NNNNNN`` (six digits, zero-padded) of shard ``index``."""
    return f"{index:06d}"


def _inputs_digest(items: Sequence[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(it.key.encode("utf-8") + b"\n")
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_to_arrow(table: Any) -> Any:
    """An astropy Table as a pyarrow Table with fixed types (str, int64, float64, bool)."""
    import pyarrow as pa

    cols = {}
    for name in table.colnames:
        col = np.asarray(table[name])
        kind = col.dtype.kind
        if col.ndim > 1:
            cols[name] = pa.array(col.tolist())
        elif kind in "USO":
            cols[name] = pa.array([str(v) for v in col.tolist()], type=pa.string())
        elif kind == "b":
            cols[name] = pa.array(col, type=pa.bool_())
        elif kind in "iu":
            cols[name] = pa.array(col.astype(np.int64), type=pa.int64())
        else:
            cols[name] = pa.array(col.astype(np.float64), type=pa.float64())
    return pa.table(cols) if cols else pa.table({"image_id": pa.array([], pa.int64())})


def write_parquet(table: Any, path: Path, meta: dict[str, str] | None = None) -> Path:
    """Write a pyarrow table to parquet atomically, with fixed (reproducible) options."""
    import pyarrow.parquet as pq

    if meta is not None:
        table = table.replace_schema_metadata({k: str(v) for k, v in sorted(meta.items())})
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=3,
            row_group_size=1 << 17,
            write_statistics=True,
        )
    return path


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Run one shard (in a worker) and write ``shards/NNNNNN.parquet``.

    Returns
    -------
    dict
        ``index``, ``n_inputs``, ``n_rows``, ``sha256`` (of the parquet file), ``failed``
        (``[image_id, input, reason]`` lists), ``meta`` (catalogue metadata).
    """
    import warnings

    import pyarrow as pa

    runner = get_runner(task.spec)
    items = [(task.first_id + k, it) for k, it in enumerate(task.items)]
    with warnings.catch_warnings():
        # one per clump-free image from photutils: noise at survey scale
        warnings.filterwarnings("ignore", message="No sources were found")
        tables, failed = runner.run(items)
    parts = [table_to_arrow(t) for t in tables if len(t)]
    arrow = pa.concat_tables(parts, promote_options="permissive") if parts else None
    if arrow is None:
        arrow = pa.table({"image_id": pa.array([], pa.int64())})
    path = Path(task.out) / "shards" / f"{shard_name(task.index)}.parquet"
    meta = runner.meta()
    write_parquet(arrow, path, meta)
    return {
        "index": task.index,
        "n_inputs": len(task.items),
        "n_rows": arrow.num_rows,
        "sha256": _sha256(path),
        "failed": [[int(i), k, r] for i, k, r in sorted(failed)],
        "meta": meta,
    }


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def checkpoint_kind(path: str | Path) -> str:
    """``"detector"`` or ``"classifier"``: which kind of clumpdet checkpoint ``path`` is."""
    from clumpdet.checkpoints import FORMATS
    from clumpdet.errors import CheckpointError
    from clumpdet.utils import load_torch_file

    obj = load_torch_file(path, what="checkpoint")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    for kind in ("detector", "classifier"):
        if fmt == FORMATS[kind]:
            return kind
    raise CheckpointError(
        path, f"is not a clumpdet detector or classifier checkpoint (format {fmt!r})"
    )


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for it in items:
        chunk.append(it)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Manifest:
    def __init__(self, out: Path, settings: dict[str, Any], *, overwrite: bool) -> None:
        self.path = out / "manifest.json"
        self.settings = settings
        self.shards: dict[str, dict[str, Any]] = {}
        if self.path.is_file() and not overwrite:
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(self.path, f"unreadable manifest ({exc})") from None
            if doc.get("format") != MANIFEST_FORMAT:
                raise InputError(self.path, "is not a clumpdet catalogue manifest")
            old = doc.get("settings", {})
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if diff:
                what = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff)
                raise InputError(
                    out,
                    f"was made with other settings ({what}); resume with the same command, or "
                    "use another --out (or --overwrite)",
                )
            self.shards = dict(doc.get("shards", {}))

    def done(self, index: int, items: Sequence[Item], out: Path) -> bool:
        """True when shard ``index`` is finished with these inputs (and its file intact)."""
        rec = self.shards.get(shard_name(index))
        if rec is None:
            return False
        if rec["inputs_sha256"] != _inputs_digest(items) or rec["n_inputs"] != len(items):
            listed = out / rec["inputs_file"]
            old = listed.read_text().splitlines() if listed.is_file() else []
            new = [it.key for it in items]
            first = next(
                (k for k in range(max(len(old), len(new))) if old[k : k + 1] != new[k : k + 1]),
                0,
            )
            was = old[first] if first < len(old) else "(end of list)"
            now = new[first] if first < len(new) else "(end of list)"
            raise InputError(
                out / "manifest.json",
                f"shard {shard_name(index)} was run on other inputs (entry {first + 1}: "
                f"{was!r}, now {now!r}); rerun with the same inputs, or use another --out",
            )
        parquet = out / rec["file"]
        return parquet.is_file() and _sha256(parquet) == rec["sha256"]

    def record(self, result: dict[str, Any], items: Sequence[Item], out: Path) -> None:
        name = shard_name(result["index"])
        inputs_file = Path("shards") / f"{name}.inputs.txt"
        with atomic_write(out / inputs_file, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(it.key + "\n" for it in items)
        self.shards[name] = {
            "file": f"shards/{name}.parquet",
            "inputs_file": inputs_file.as_posix(),
            "n_inputs": len(items),
            "inputs_sha256": _inputs_digest(items),
            "sha256": result["sha256"],
            "n_rows": result["n_rows"],
            "failed": result["failed"],
            "meta": result["meta"],
        }
        self.write()

    def write(self) -> None:
        doc = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "settings": self.settings,
            "shards": dict(sorted(self.shards.items())),
        }
        with atomic_write(self.path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.write("\n")


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: Dask settings of the LocalCluster workers: the statistical profiler (on by default) keeps a
#: call-tree per second of work for ~1000 s, which made a worker's RSS grow with the run
#: (+14 % from 1,000 to 10,000 images) though the catalogue code itself stays flat. The nanny
#: also sets ``MALLOC_TRIM_THRESHOLD_=65536`` in each worker's environment by default; setting
#: it turns off glibc's adaptive mmap threshold, so every image-sized array is mapped and
#: faulted in afresh: the whole worker (network and photometry) ran 30-40 % slower than the
#: same shard in one process. ``None`` unsets it, so workers use glibc's adaptive threshold; their
#: RSS stays flat over the run (``tools/bench_catalogue.py``, memory section).
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


@contextlib.contextmanager
def dask_client(*, workers: int | None, scheduler: str | None, threads: int = 1) -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler`` if given, else on a new ``LocalCluster``.

    ``workers`` processes (default: one per CPU core, each running ``threads`` torch threads),
    one task slot each, no dashboard.
    """
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or max(1, available_cores() // max(1, threads))
    with (
        dask.config.set(WORKER_CONFIG),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _run_tasks(
    tasks: Iterator[ShardTask],
    on_done: Callable[[dict[str, Any]], None],
    *,
    workers: int | None,
    scheduler: str | None,
    threads: int,
) -> None:
    if workers == 0 and not scheduler:
        for task in tasks:
            on_done(run_shard(task))
        return
    from distributed import as_completed

    with dask_client(workers=workers, scheduler=scheduler, threads=threads) as client:
        slots = max(1, sum(client.nthreads().values()))
        pending = as_completed()
        in_flight = 0
        for task in tasks:
            while in_flight >= 2 * slots:  # bounded: never the whole survey in the queue
                on_done(next(pending).result())
                in_flight -= 1
            pending.add(client.submit(run_shard, task, pure=False))
            in_flight += 1
        for fut in pending:
            on_done(fut.result())


def merge_shards(out: Path, manifest: dict[str, dict[str, Any]], *, fits: bool = False) -> int:
    """Merge the shards into ``catalogue.parquet`` (+ ``.fits``) and write ``failed.csv``.

    Rows are sorted by ``image_id`` (stable: each image's rows keep the catalogue's order).

    Returns
    -------
    int
        Number of rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = sorted(manifest)
    tables = [pq.read_table(out / manifest[n]["file"]) for n in names]
    meta: dict[str, str] = {}
    for n in names:
        meta.update(manifest[n].get("meta", {}))
    nonempty = [t.replace_schema_metadata(None) for t in tables if t.num_rows]
    if nonempty:
        merged = pa.concat_tables(nonempty, promote_options="permissive")
        order = np.argsort(merged.column("image_id").to_numpy(), kind="stable")
        merged = merged.take(pa.array(order))
    else:
        merged = tables[0].replace_schema_metadata(None) if tables else pa.table({})
    write_parquet(merged, out / "catalogue.parquet", meta)
    if fits:
        from astropy.table import Table

        t = Table({c: merged.column(c).to_numpy(zero_copy_only=False) for c in merged.column_names})
        for c in t.colnames:
            if t[c].dtype.kind == "O":
                t[c] = t[c].astype(str)
        t.meta.update(sorted(meta.items()))  # key order fixed: resumed runs read it from JSON
        with atomic_path(out / "catalogue.fits") as tmp:
            t.write(tmp, format="fits", overwrite=True)
    rows = sorted(r for n in names for r in manifest[n].get("failed", []))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_id", "input", "reason"])
    w.writerows(rows)
    with atomic_write(out / "failed.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return merged.num_rows


def _preflight(
    items: Iterator[Item],
    spec: ModelSpec,
    trained: dict[str, str],
    *,
    allow_input_mismatch: bool = False,
) -> Iterator[Item]:
    """Refuse at once (one line) a run whose first readable input cannot be used as a whole.

    Detectors: the first input must be of the model's training kind (FITS or PNG/JPEG,
    :func:`~clumpdet.inference.run.check_input_kind`, unless ``allow_input_mismatch``) and a
    FITS input must give its pixel scale (or ``pixel_scale`` be set).
    """
    if spec.kind != "detector":
        yield from items
        return
    from clumpdet.data.fits import pixel_scale_of
    from clumpdet.inference.run import check_input_kind

    checked = False
    for it in items:
        if not checked and it.error is None:
            if not allow_input_mismatch:
                check_input_kind(it.paths[:1], trained, spec.checkpoint)
            try:
                image = read_item(it, bands=None)
            except ITEM_ERRORS:
                image = None
            if image is not None:
                checked = True
                no_scale = pixel_scale_of(image.wcs, image.header) is None
                if spec.pixel_scale is None and not image.is_raster and no_scale:
                    raise InputError(
                        image.source,
                        "has no WCS or pixel-scale keyword to give its pixel scale; pass "
                        "--pixel-scale ARCSEC_PER_PIXEL or --pixel-scale model",
                    )
        yield it


def run_catalogue(
    *,
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    shard_size: int = 1000,
    band_files: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int = 1,
    batch_size: int = 8,
    tile_overlap: int = 48,
    score_threshold: float | None = None,
    pixel_scale: float | str | None = None,
    device: str = "cpu",
    fits: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    max_shards: int | None = None,
    allow_input_mismatch: bool = False,
) -> dict[str, Any]:
    """Run a survey catalogue (module docstring) and return a summary.

    Parameters
    ----------
    checkpoint : path
        A detector (``model.pt``) or classifier (``classifier.pt``) checkpoint; the kind is read
        from the file.
    inputs : sequence of path or str
        Files, folders, globs or list files (:func:`iter_paths`).
    out : path
        Run directory.
    shard_size : int
        Images per shard (per task and per parquet file).
    band_files : str, optional
        Group single-band files into images (:class:`BandFiles`), e.g. ``'{field}-{band}.fits'``.
    workers : int, optional
        Size of the ``LocalCluster`` (default: one worker per CPU core / ``threads``); ``0``
        runs every shard in this process without Dask.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. a ``dask-jobqueue`` cluster's) to use instead.
    threads : int
        Torch threads per worker (also in this process with ``workers=0``).
    batch_size, tile_overlap, score_threshold, pixel_scale, device
        As for :func:`clumpdet.inference.run.run_detection` (detectors).
    fits : bool
        Also write ``catalogue.fits``.
    overwrite : bool
        Start afresh, discarding a previous run in ``out``.
    progress : bool
        Show a progress bar (images/s and ETA).
    max_shards : int, optional
        Stop after this many shards have been run (tests and benchmarks); no merge then.
    allow_input_mismatch : bool
        Run a detector on inputs of another kind than its training images (PNG/JPEG for a
        FITS-trained model or the reverse); refused otherwise.

    Returns
    -------
    dict
        ``n_images``, ``n_failed``, ``n_rows``, ``n_shards``, ``n_skipped`` (resumed shards),
        ``catalogue``, ``failed``, ``manifest``.

    Raises
    ------
    InputError
        Bad inputs, a FITS input without pixel scale, or a run directory made with other
        inputs or settings.
    """
    from tqdm.auto import tqdm

    from clumpdet.utils import file_sha256

    if shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, not {shard_size}")
    out = Path(out)
    kind = checkpoint_kind(checkpoint)
    spec = ModelSpec(
        checkpoint=str(Path(checkpoint).resolve()),
        kind=kind,
        batch_size=int(batch_size),
        tile_overlap=int(tile_overlap),
        device=device,
        pixel_scale=pixel_scale,
        score_threshold=score_threshold,
        threads=int(threads),
    )
    from clumpdet.checkpoints import read_checkpoint
    from clumpdet.data.preprocessing import Preprocessing

    header = read_checkpoint(checkpoint, kind)  # type: ignore[arg-type]
    bands = Preprocessing.from_dict(header["preprocessing"]).bands
    trained = dict(header["input"])
    del header
    settings = {
        "checkpoint_sha256": file_sha256(checkpoint, length=64),
        "kind": kind,
        "shard_size": int(shard_size),
        "band_files": band_files or "",
        "batch_size": int(batch_size),
        "tile_overlap": int(tile_overlap),
        "score_threshold": score_threshold,
        "pixel_scale": pixel_scale,
        "threads": int(threads),
    }
    if overwrite and out.is_dir():
        import shutil

        for name in ("shards", "manifest.json", "catalogue.parquet", "catalogue.fits"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / "shards").mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(out, settings, overwrite=overwrite)

    def items() -> Iterator[Item]:
        return iter_items(inputs, band_files=band_files, bands=bands)

    total = sum(1 for _ in items()) if progress else None
    bar = tqdm(total=total, desc="catalogue", unit="img", disable=not progress, smoothing=0.1)
    seen: set[str] = set()
    by_index: dict[int, list[Item]] = {}
    counts = {"images": 0, "skipped": 0, "run": 0}

    def tasks() -> Iterator[ShardTask]:
        first = 0
        for index, chunk in enumerate(
            _chunks(
                _preflight(items(), spec, trained, allow_input_mismatch=allow_input_mismatch),
                shard_size,
            )
        ):
            seen.add(shard_name(index))
            counts["images"] += len(chunk)
            if manifest.done(index, chunk, out):
                counts["skipped"] += 1
                bar.update(len(chunk))
            elif max_shards is None or counts["run"] < max_shards:
                counts["run"] += 1
                by_index[index] = chunk
                yield ShardTask(index, first, chunk, str(out), spec)
            first += len(chunk)

    def on_done(result: dict[str, Any]) -> None:
        chunk = by_index.pop(result["index"])
        manifest.record(result, chunk, out)
        bar.update(len(chunk))

    try:
        _run_tasks(tasks(), on_done, workers=workers, scheduler=scheduler, threads=threads)
    finally:
        bar.close()
    stale = sorted(set(manifest.shards) - seen)
    if stale:
        raise InputError(
            out / "manifest.json",
            f"records shard(s) {', '.join(stale[:3])} beyond the {len(seen)} this input list "
            "makes; rerun with the same inputs, or use another --out",
        )
    summary: dict[str, Any] = {
        "n_images": counts["images"],
        "n_shards": len(seen),
        "n_skipped": counts["skipped"],
        "manifest": str(manifest.path),
    }
    if max_shards is not None and len(manifest.shards) < len(seen):
        return {**summary, "complete": False}
    if not seen:
        raise InputError(None, "catalogue: the inputs name no image")
    n_rows = merge_shards(out, manifest.shards, fits=fits)
    summary.update(
        complete=True,
        n_rows=n_rows,
        n_failed=sum(len(r.get("failed", [])) for r in manifest.shards.values()),
        catalogue=str(out / "catalogue.parquet"),
        failed=str(out / "failed.csv"),
    )
    return summary
