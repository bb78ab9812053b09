"""Batched, tiled inference with a trained detector.

Images no larger than the training size go through the model whole. Larger images (survey
fields) are cut into overlapping tiles of the training size; every tile *owns* a core region
(tile borders are split halfway through each overlap), a detection is kept only by the tile
whose core (grown by a small margin) holds its centre, and a final class-wise NMS merges the
copies that the margin lets through. A source straddling a tile border is therefore reported
exactly once, with the box from the tile where it lies furthest from the edge.

Pixel scale: a detector sees objects at the scale it was trained at
(``DetectorBundle.pixel_scale``, arcsec/pixel). Each input's scale comes from its WCS (or a
``PIXSCALE``-like header keyword, :func:`clumpdet.data.fits.pixel_scale_of`), or from the
``pixel_scale`` given to :class:`Predictor`; an input whose scale differs from the model's by
more than :data:`SCALE_TOLERANCE` is resampled to the model's scale (flux-conserving bilinear,
antialiased when shrinking) before detection, and the boxes are mapped back to the input's
pixels, so catalogues, photometry and overlays stay in the input's pixel grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from clumpdet.checkpoints import DetectorBundle, load_detector
from clumpdet.data.dataset import bin_planes
from clumpdet.data.images import COLOUR_BANDS, RASTER_SUFFIXES, ImageData, read_image
from clumpdet.detections import Detections, coco_results
from clumpdet.errors import InputError
from clumpdet.inference.footprint import keep_central

#: How every prediction path treats NaN/inf pixels: replaced by the band median.
NAN_POLICY = "median"

#: Relative pixel-scale difference below which an input is run without resampling.
SCALE_TOLERANCE = 0.01


def resample_planes(data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample ``(C, H, W)`` planes to ``(C, *shape)``, conserving each plane's total flux.

    Bilinear interpolation (antialiased when shrinking) of the surface brightness, times the
    ratio of pixel areas, so a source keeps its flux at the new scale.

    Parameters
    ----------
    data : ndarray, shape (C, H, W)
        Pixel values (flux per pixel).
    shape : (int, int)
        Output ``(H', W')``.

    Returns
    -------
    ndarray, float32, shape (C, H', W')
    """
    h, w = data.shape[1:]
    nh, nw = int(shape[0]), int(shape[1])
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]
    shrink = nh < h or nw < w
    y = torch.nn.functional.interpolate(
        x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=shrink
    )[0]
    return (y.numpy() * np.float32((h * w) / (nh * nw))).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``.

    The last tile is aligned to the end, so every tile is full-size when ``length >= tile``.
    """
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


def _core_bounds(starts: Sequence[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Core interval of each tile: borders halfway through each overlap."""
    bounds = []
    for k, s in enumerate(starts):
        lo = 0.0 if k == 0 else (starts[k - 1] + tile + s) / 2.0
        hi = float(length) if k == len(starts) - 1 else (s + tile + starts[k + 1]) / 2.0
        bounds.append((lo, hi))
    return bounds


class Predictor:
    """Run a trained detector on images of any size.

    Parameters
    ----------
    bundle : DetectorBundle
        A loaded checkpoint (:func:`clumpdet.checkpoints.load_detector`).
    batch_size : int
        Images (or tiles) per forward pass.
    tile_overlap : int
        Overlap of neighbouring tiles in pixels; must exceed the largest object (default 48).
    edge_margin : float
        Pixels by which a tile's core is grown before the merging NMS.
    device : str or torch.device
        ``"cpu"`` or ``"cuda"``.
    pixel_scale : float or "model", optional
        Arcsec/pixel of every input, overriding their WCS; ``"model"`` runs every input as it
        is (no resampling). Default: each input's own scale (module docstring); inputs that do
        not give one (PNG/JPEG, arrays, FITS without a WCS) are taken to be at the model's
        scale, unless ``require_pixel_scale``.
    require_pixel_scale : bool
        Refuse (``InputError``) a FITS input without a WCS or scale keyword when no
        ``pixel_scale`` is given, instead of assuming the model's scale.
    central_host : bool, optional
        Keep only detections on the central galaxy of each input
        (:func:`clumpdet.inference.footprint.keep_central`). Default: the checkpoint's
        ``model.central_host``.
    nucleus_exclusion : float, optional
        With ``central_host``, also drop detections centred on the central galaxy's nucleus,
        within this fraction of their box side. Default: the checkpoint's
        ``model.nucleus_exclusion``.

    Examples
    --------
    >>> pred = Predictor.from_checkpoint("run/model.pt")          # doctest: +SKIP
    >>> dets = pred.predict([read_image("galaxy.fits")])          # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: DetectorBundle,
        *,
        batch_size: int = 8,
        tile_overlap: int = 48,
        edge_margin: float = 4.0,
        device: str | torch.device = "cpu",
        pixel_scale: float | str | None = None,
        require_pixel_scale: bool = False,
        central_host: bool | None = None,
        nucleus_exclusion: float | None = None,
    ) -> None:
        self.bundle = bundle
        self.central_host = bool(
            bundle.model_config.central_host if central_host is None else central_host
        )
        if nucleus_exclusion is None:
            nucleus_exclusion = bundle.model_config.nucleus_exclusion
        if not 0.0 <= float(nucleus_exclusion) < 1.0:
            raise InputError(None, f"nucleus_exclusion {nucleus_exclusion!r} must be in [0, 1)")
        self.nucleus_exclusion = float(nucleus_exclusion)
        if isinstance(pixel_scale, str) and pixel_scale != "model":
            try:
                pixel_scale = float(pixel_scale)
            except ValueError:
                raise InputError(
                    None, f"pixel_scale {pixel_scale!r} must be arcsec/pixel or 'model'"
                ) from None
        if isinstance(pixel_scale, float | int) and not float(pixel_scale) > 0:
            raise InputError(None, f"pixel_scale {pixel_scale!r} must be a positive arcsec/pixel")
        self.pixel_scale = pixel_scale
        self.require_pixel_scale = bool(require_pixel_scale)
        self.batch_size = int(batch_size)
        self.tile = bundle.image_size
        if tile_overlap >= min(self.tile):
            raise InputError(None, f"tile_overlap {tile_overlap} must be < tile size {self.tile}")
        self.tile_overlap = int(tile_overlap)
        self.edge_margin = float(edge_margin)
        self.device = torch.device(device)
        self._warned_input = False
        self.model = bundle.model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Predictor:
        """Load ``path`` (a ``model.pt``) and build a predictor."""
        device = kwargs.get("device", "cpu")
        return cls(load_detector(path, device=device), **kwargs)

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands the model expects, in order."""
        return self.bundle.preprocessing.bands

    @property
    def bin(self) -> int:
        """Pixel binning applied before the network (checkpoint ``input["bin"]``, colour models
        trained on binned Galaxy Zoo frames; 1 otherwise). Boxes are returned in input pixels."""
        return int(self.bundle.input.get("bin", 1) or 1)

    @property
    def model_pixel_scale(self) -> float:
        """Arcsec/pixel the model was trained at."""
        return float(getattr(self.bundle, "pixel_scale", 0.396))

    def input_scale(self, image: ImageData | np.ndarray) -> float:
        """Arcsec/pixel of one input (class docstring: ``pixel_scale``).

        Raises
        ------
        InputError
            With ``require_pixel_scale``: a FITS image with neither a WCS nor a scale keyword.
        """
        from clumpdet.data.fits import pixel_scale_of

        if self.pixel_scale == "model":
            return self.model_pixel_scale
        if self.pixel_scale is not None:
            return float(self.pixel_scale)
        if isinstance(image, ImageData):
            scale = pixel_scale_of(image.wcs, image.header)
            if scale is not None:
                return scale
            if self.require_pixel_scale and image.path is not None and not image.is_raster:
                raise InputError(
                    image.source,
                    "has no WCS or pixel-scale keyword to give its pixel scale; pass "
                    f"--pixel-scale ARCSEC_PER_PIXEL (the model was trained at "
                    f'{self.model_pixel_scale:g}"/px) or --pixel-scale model',
                )
        return self.model_pixel_scale

    def to_model_scale(
        self, image: ImageData | np.ndarray
    ) -> tuple[ImageData | np.ndarray, tuple[float, float]]:
        """Resample one input to the model's pixel scale.

        Returns
        -------
        image : ImageData or ndarray
            The input, resampled when its scale differs by more than :data:`SCALE_TOLERANCE`.
        factors : (float, float)
            ``(fy, fx)``: resampled pixels per input pixel along y and x (``(1, 1)`` if not
            resampled); input-pixel boxes are resampled-pixel boxes divided by them.
        """
        import dataclasses

        factor = self.input_scale(image) / self.model_pixel_scale
        if abs(factor - 1.0) <= SCALE_TOLERANCE:
            return image, (1.0, 1.0)
        data = image.data if isinstance(image, ImageData) else np.asarray(image)
        h, w = data.shape[1:]
        nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
        planes = resample_planes(data, (nh, nw))
        out = dataclasses.replace(image, data=planes) if isinstance(image, ImageData) else planes
        return out, (nh / h, nw / w)

    def prepare(self, image: ImageData | np.ndarray) -> np.ndarray:
        """Select bands and stretch one image (float32 ``(C, H, W)``), with input checks."""
        name = getattr(image, "path", None)
        data = image.data if isinstance(image, ImageData) else np.asarray(image)
        if data.size == 0:
            raise InputError(name, "image is empty")
        if not np.isfinite(data).any():
            raise InputError(name, "image has no finite pixels (all NaN/inf)")
        if isinstance(image, ImageData) and not set(self.bands) <= set(image.bands):
            if not image.band_names_known or image.bands == COLOUR_BANDS:
                image = data  # unnamed planes or a colour cutout: matched by count, in order
        try:
            return self.bundle.preprocessing.stretch_only(image)
        except InputError as exc:
            if exc.path is None and name is not None:
                raise InputError(name, exc.problem) from None
            raise

    @torch.inference_mode()
    def _forward(self, batch: list[np.ndarray]) -> list[Detections]:
        tensors = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in batch]
        outputs = self.model(tensors)
        return [
            Detections(
                o["boxes"].float().cpu().numpy(),
                o["labels"].cpu().numpy().astype(np.int64),
                o["scores"].float().cpu().numpy(),
            )
            for o in outputs
        ]

    def predict(self, images: Iterable[ImageData | np.ndarray]) -> list[Detections]:
        """Detect objects in each image.

        Parameters
        ----------
        images : iterable of ImageData or ndarray (C, H, W)
            Raw images in physical units (the stored stretch is applied here). An
            :class:`ImageData` has its bands picked by name.

        Returns
        -------
        list of Detections
            One per image, down to the model's ``min_score`` (cut with
            :meth:`Detections.above` at the operating threshold).
        """
        jobs: list[tuple[int, int, int, tuple[float, float, float, float] | None]] = []
        crops: list[np.ndarray] = []
        shapes: list[tuple[int, int]] = []
        prepared: list[np.ndarray] = []  # network inputs, for the central-host footprint
        factors: list[tuple[float, float]] = []
        th, tw = self.tile
        factor = self.bin
        for i, image in enumerate(images):
            image, fyx = self.to_model_scale(image)
            factors.append(fyx)
            x = self.prepare(image)
            if factor > 1:  # colour model trained on binned frames: bin the same way
                x = bin_planes(x, factor)
            h, w = x.shape[1:]
            shapes.append((h, w))
            prepared.append(x)
            if h <= th and w <= tw:
                jobs.append((i, 0, 0, None))
                crops.append(x)
                continue
            ys, xs = tile_starts(h, th, self.tile_overlap), tile_starts(w, tw, self.tile_overlap)
            ycore, xcore = _core_bounds(ys, th, h), _core_bounds(xs, tw, w)
            for y0, (ylo, yhi) in zip(ys, ycore):
                for x0, (xlo, xhi) in zip(xs, xcore):
                    jobs.append((i, y0, x0, (xlo, ylo, xhi, yhi)))
                    crops.append(x[:, y0 : y0 + th, x0 : x0 + tw])
        results: list[list[Detections]] = [[] for _ in shapes]
        for start in range(0, len(crops), self.batch_size):
            dets = self._forward(crops[start : start + self.batch_size])
            for (i, y0, x0, core), d in zip(jobs[start : start + self.batch_size], dets):
                boxes = d.boxes + np.array([x0, y0, x0, y0], dtype=np.float32)
                keep = np.ones(len(d), dtype=bool)
                if core is not None:
                    m = self.edge_margin
                    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
                    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
                    keep = (
                        (cx >= core[0] - m)
                        & (cx < core[2] + m)
                        & (cy >= core[1] - m)
                        & (cy < core[3] + m)
                    )
                results[i].append(Detections(boxes[keep], d.labels[keep], d.scores[keep]))
        merged = [self._merge(parts) for parts in results]
        if self.central_host:  # segmented only where there is something to keep or drop
            merged = [
                keep_central(d, x, nucleus_exclusion=self.nucleus_exclusion)
                for d, x in zip(merged, prepared)
            ]
        if factor > 1:  # boxes back to the (resampled) input's pixels
            merged = [Detections(d.boxes * np.float32(factor), d.labels, d.scores) for d in merged]
        return [_unscale(d, fyx) for d, fyx in zip(merged, factors)]

    def _merge(self, parts: list[Detections]) -> Detections:
        if len(parts) == 1:
            return parts[0]
        boxes = np.concatenate([p.boxes for p in parts]).reshape(-1, 4)
        labels = np.concatenate([p.labels for p in parts])
        scores = np.concatenate([p.scores for p in parts])
        if len(scores) == 0:
            return Detections(boxes.astype(np.float32), labels, scores)
        mc = self.bundle.model_config
        # duplicates from neighbouring tiles may disagree on the class: merge them across
        # classes when the model's own NMS is class-agnostic
        groups = np.zeros_like(labels) if mc.class_agnostic_nms else labels
        keep = batched_nms(
            torch.from_numpy(boxes),
            torch.from_numpy(scores),
            torch.from_numpy(groups),
            mc.nms_iou,
        ).numpy()
        return Detections(boxes[keep], labels[keep], scores[keep])

    def read(self, path: str | Path) -> ImageData:
        """Read one image file the way every prediction path does.

        FITS files have the model's bands picked by name; PNG/JPEG cutouts keep their B, G, R
        planes (wavelength order), matched to the model's bands by count. NaN/inf pixels are
        replaced by the band median (:data:`NAN_POLICY`). A file of another kind than the
        model's training input (a PNG for a FITS-trained model, or the reverse;
        ``DetectorBundle.input``) gives a ``UserWarning`` (once per predictor).
        """
        raster = Path(path).suffix.lower() in RASTER_SUFFIXES
        trained = self.bundle.input
        mismatch = trained["kind"] != "unknown" and raster != (trained["kind"] in ("png", "jpeg"))
        if mismatch and not self._warned_input:
            import warnings

            self._warned_input = True

            unit = f", {trained['unit']}" if trained["unit"] else ""
            warnings.warn(
                f"{path}: the model was trained on {trained['kind']} images{unit}; "
                "its detections on other input are not calibrated",
                UserWarning,
                stacklevel=2,
            )
        return read_image(path, bands=None if raster else self.bands, nan_policy=NAN_POLICY)

    def iter_files(
        self, paths: Sequence[str | Path], *, progress: bool = False
    ) -> Iterator[tuple[ImageData, Detections]]:
        """Read and detect ``paths`` in chunks of ``4 * batch_size`` images, in order.

        Only one chunk of images is held in memory at a time.

        Yields
        ------
        (ImageData, Detections)
            Each image as read (physical units, WCS) and its detections down to ``min_score``.
        """
        from tqdm.auto import tqdm

        chunk = max(1, 4 * self.batch_size)
        for start in tqdm(
            range(0, len(paths), chunk), disable=not progress, desc="detect", unit="chunk"
        ):
            images = [self.read(p) for p in paths[start : start + chunk]]
            yield from zip(images, self.predict(images))

    def predict_files(
        self, paths: Sequence[str | Path], *, progress: bool = False
    ) -> tuple[list[ImageData], list[Detections]]:
        """Read image files (FITS/PNG/JPEG, :meth:`read`) and detect in each.

        Returns
        -------
        images : list of ImageData
            As read, for catalogues and overlays.
        detections : list of Detections
            One per image, down to the model's ``min_score``.
        """
        images: list[ImageData] = []
        dets: list[Detections] = []
        for image, det in self.iter_files(paths, progress=progress):
            images.append(image)
            dets.append(det)
        return images, dets

    def predict_coco(
        self, coco: str | Path | Mapping[str, Any], *, progress: bool = False
    ) -> CocoPredictions:
        """Detect in every image a COCO file lists (images are not kept in memory).

        Parameters
        ----------
        coco : path or dict
            A COCO annotations file, or its :func:`clumpdet.data.coco.load_coco` document.
        progress : bool
            Show a progress bar.

        Returns
        -------
        CocoPredictions
            Image ids in file order and their detections down to ``min_score``.
        """
        from clumpdet.data.coco import load_coco

        doc = load_coco(coco) if isinstance(coco, (str, Path)) else coco
        root = Path(doc["_root"])
        ids = [int(im["id"]) for im in doc["images"]]
        paths = [root / im["file_name"] for im in doc["images"]]
        dets = [det for _image, det in self.iter_files(paths, progress=progress)]
        return CocoPredictions(image_ids=ids, detections=dets)


def _unscale(det: Detections, factors: tuple[float, float]) -> Detections:
    """Map boxes from resampled pixels back to the input's pixels."""
    fy, fx = factors
    if fy == 1.0 and fx == 1.0:
        return det
    div = np.array([fx, fy, fx, fy], dtype=np.float32)
    return Detections((det.boxes / div).astype(np.float32), det.labels, det.scores)


@dataclass
class CocoPredictions:
    """Detections of a COCO image set.

    Attributes
    ----------
    image_ids : list of int
        COCO image ids, in the file's order.
    detections : list of Detections
        One per image, down to the model's ``min_score``.
    """

    image_ids: list[int]
    detections: list[Detections]

    def results(self) -> list[dict[str, Any]]:
        """COCO results records (:func:`clumpdet.detections.coco_results`)."""
        return coco_results(self.detections, self.image_ids)

    def write(self, path: str | Path) -> Path:
        """Write the COCO results JSON (:func:`clumpdet.data.coco.write_predictions`)."""
        from clumpdet.data.coco import write_predictions

        return write_predictions(path, self.results())
