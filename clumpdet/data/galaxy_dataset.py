"""The classifier's torch Dataset and its galaxy-safe augmentation.

:class:`ClassificationDataset` turns a :class:`~clumpdet.data.containers.ClassificationData`
into training items with preprocessing, crop/resize and :class:`GalaxyAugmentation` (rotations,
flips, small zoom; never colour jitter).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from clumpdet.data.containers import ClassificationData
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import ConfigError, InputError


@dataclasses.dataclass(frozen=True)
class GalaxyAugmentation:
    """Geometric augmentation for galaxy cutouts; never touches pixel values' scale or colour.

    Parameters
    ----------
    rot90 : bool
        Rotate by a random multiple of 90 degrees (exact, no interpolation).
    flips : bool
        Random horizontal flip (with ``rot90`` this covers all 8 dihedral views).
    rotate : bool
        Rotate by a uniform random angle in [0, 360) degrees (bilinear, reflect padding).
    zoom : float
        Maximum scale jitter: the scale is log-uniform in ``[1 / (1 + zoom), 1 + zoom]``
        (0 disables; Dieleman et al. used about 1.3).
    shift : float
        Maximum translation as a fraction of the image size (0 disables).

    Notes
    -----
    Rotation, zoom and shift are applied together with one ``grid_sample`` (bilinear,
    ``padding_mode="reflection"``) that keeps the image size; with all three off only exact
    pixel permutations are used.
    """

    rot90: bool = True
    flips: bool = True
    rotate: bool = False
    zoom: float = 0.0
    shift: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.zoom) and 0 <= self.zoom <= 1):
            raise ConfigError(f"augmentation zoom must be in [0, 1], got {self.zoom}")
        if not (math.isfinite(self.shift) and 0 <= self.shift <= 0.5):
            raise ConfigError(f"augmentation shift must be in [0, 0.5], got {self.shift}")

    def __call__(
        self, image: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augment one ``(C, H, W)`` float tensor; returns a new tensor of the same shape."""

        def rand(n: int = 1) -> torch.Tensor:
            return torch.rand(n, generator=generator, dtype=torch.float64)

        x = image
        if self.flips and rand().item() < 0.5:
            x = torch.flip(x, dims=(2,))
        if self.rot90:
            k = int(rand().item() * 4) % 4
            if k and x.shape[1] == x.shape[2]:
                x = torch.rot90(x, k, dims=(1, 2))
            elif k == 2:
                x = torch.flip(x, dims=(1, 2))
        if not (self.rotate or self.zoom > 0 or self.shift > 0):
            return x.contiguous()
        angle = float(rand().item() * 2 * math.pi) if self.rotate else 0.0
        log_z = math.log1p(self.zoom)
        scale = math.exp((2 * float(rand().item()) - 1) * log_z) if self.zoom > 0 else 1.0
        tx, ty = ((2 * rand(2) - 1) * 2 * self.shift).tolist() if self.shift > 0 else (0.0, 0.0)
        h, w = x.shape[1], x.shape[2]
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # output -> input map in pixel units is R / scale; in normalised units D^-1 (R/s) D
        theta = torch.tensor(
            [[cos, -sin * h / w, tx], [sin * w / h, cos, ty]], dtype=x.dtype
        ).unsqueeze(0)
        grid = torch.nn.functional.affine_grid(theta, [1, *x.shape], align_corners=False)
        out = torch.nn.functional.grid_sample(
            x.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        return out[0]


class ClassificationDataset(Dataset):
    """torch Dataset of ``(image, target)`` (and optionally ``counts``) for a classifier.

    Each item: read image ``i`` -> ``preprocessing`` (band selection, stretch and, with
    ``standardise``, mean/std) -> ``augmentation`` -> ``center_crop`` -> ``resize``.

    Parameters
    ----------
    data : ClassificationData
        The rows (use :meth:`ClassificationData.subset` for a split).
    preprocessing : Preprocessing, optional
        Bands are selected by name from ``data.bands``; if the names differ but the count
        matches, planes are taken in order. ``None``: pixels as read.
    standardise : bool
        Apply the preprocessing's mean/std (``Preprocessing.__call__``) or only the stretch
        (``Preprocessing.stretch_only``).
    center_crop : int, optional
        Side of a central square crop, pixels (Dieleman: 207 of 424).
    resize : int, optional
        Final side, pixels (bilinear with antialiasing; Dieleman: 69, then 45 px views).
    augmentation : GalaxyAugmentation, optional
        Applied before the crop, so rotated corners come from real pixels.
    return_counts : bool
        Items are ``(image, target, counts)``; needs ``data.counts``.
    cache : bool
        Keep preprocessed images (before augmentation) in memory after their first read,
        reduced to what the items need: with ``center_crop``, the central square that still
        holds the crop after any rotation and zoom of ``augmentation``; with ``resize`` smaller
        than that (or than a square image without crop), scaled down by the final resize factor
        (so the final resize is a no-op). Not reduced when ``augmentation`` shifts.
        Images are thus decoded once, not every epoch; items agree with uncached ones up to
        interpolation order.
    seed : int, optional
        Seed of the augmentation stream (each DataLoader worker reseeds from its own torch
        seed). Default: torch's global generator.

    Notes
    -----
    Items are ``image`` float32 tensor ``(C, H', W')`` and ``target`` float32 ``(K,)``
    (``counts`` float32 ``(K,)``).
    """

    def __init__(
        self,
        data: ClassificationData,
        *,
        preprocessing: Preprocessing | None = None,
        standardise: bool = True,
        center_crop: int | None = None,
        resize: int | None = None,
        augmentation: GalaxyAugmentation | None = None,
        return_counts: bool = False,
        cache: bool = False,
        seed: int | None = None,
    ) -> None:
        self.data = data
        self.preprocessing = preprocessing
        self.standardise = standardise
        for name, value in (("center_crop", center_crop), ("resize", resize)):
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be a positive number of pixels, got {value}")
        self.center_crop = None if center_crop is None else int(center_crop)
        self.resize = None if resize is None else int(resize)
        self.augmentation = augmentation
        if return_counts and data.counts is None:
            raise ConfigError(
                f"return_counts: {data._source_text() or 'the data'} has no vote counts"
            )
        self.return_counts = return_counts
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}
        shifts = augmentation is not None and augmentation.shift > 0
        self._reduced = cache and not shifts and (center_crop or resize) is not None
        self._scaled: set[int] = set()  # cached at the final scale: the crop is `resize` px
        self._by_name = True
        if preprocessing is not None:
            if all(b in data.bands for b in preprocessing.bands):
                self._by_name = True
            elif len(preprocessing.bands) == len(data.bands):
                self._by_name = False
            else:
                raise InputError(
                    data._source_text(),
                    f"preprocessing bands {preprocessing.bands} are not among the data's "
                    f"bands {data.bands}",
                )
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self._worker_seeded: int | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_channels(self) -> int:
        """Channels of the network input."""
        return self.preprocessing.n_bands if self.preprocessing else len(self.data.bands)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the items (reads image 0 when neither crop nor resize fix it)."""
        if self.resize is not None:
            return (self.resize, self.resize)
        h, w = self._raw(0).shape[1:]
        if self.center_crop is not None:
            return (min(h, self.center_crop), min(w, self.center_crop))
        return (h, w)

    def _raw(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        img = self.data.image(index)
        prep = self.preprocessing
        if prep is not None:
            if self._by_name:
                from clumpdet.data.images import ImageData

                src = ImageData(data=img, bands=self.data.bands)
            else:
                src = img
            img = prep(src) if self.standardise else prep.stretch_only(src)
        img = np.ascontiguousarray(img, dtype=np.float32)
        if self.cache:
            img = self._reduce(img, index)
            self._cache[index] = img
        return img

    def _reduce(self, img: np.ndarray, index: int) -> np.ndarray:
        """The part of ``img`` (C, H, W) the items need, at the final scale (for the cache).

        The kept square is the crop plus a margin that holds it after any rotation and zoom of
        the augmentation. With ``resize`` below the crop it is resampled by exactly
        ``resize / center_crop``, the margin being a whole number of pixels at both scales, so
        the final centre crop of ``resize`` pixels covers exactly the uncached crop. Without a
        crop, a square image larger than ``resize`` is stored resized.
        """
        if not self._reduced:
            return img
        h, w = img.shape[1:]
        r = self.resize
        if self.center_crop is None:  # a square image is resized whole: do it once
            if r is None or h != w or r >= h:
                return img
            x = torch.nn.functional.interpolate(
                torch.from_numpy(img).unsqueeze(0),
                size=(r, r),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
            self._scaled.add(index)
            return np.ascontiguousarray(x.numpy(), dtype=np.float32)
        s = int(self.center_crop)
        aug = self.augmentation
        reach = 1.0
        if aug is not None:
            reach = (math.sqrt(2.0) if aug.rotate else 1.0) * (1.0 + aug.zoom)
        need = math.ceil(s * (reach - 1.0) / 2.0) + 1  # margin, original pixels
        top, left = (h - s) // 2, (w - s) // 2  # the uncached crop's corner
        if r is not None and r < s and h >= s and w >= s:
            g = math.gcd(s, r)
            s1, r1 = s // g, r // g  # a margin of k * s1 px becomes k * r1 px exactly
            fits = min(top, left, h - top - s, w - left - s) // s1
            k = min(math.ceil(need / s1), fits)
            pad = k * s1
            x = torch.from_numpy(
                np.array(img[:, top - pad : top + s + pad, left - pad : left + s + pad])
            )
            side = r + 2 * k * r1
            x = torch.nn.functional.interpolate(
                x.unsqueeze(0), size=(side, side), mode="bilinear", align_corners=False,
                antialias=True,
            )[0]  # fmt: skip
            self._scaled.add(index)
            return np.ascontiguousarray(x.numpy(), dtype=np.float32)
        ph = min(need, max(0, top), max(0, h - top - s))
        pw = min(need, max(0, left), max(0, w - left - s))
        y0, x0 = max(0, top) - ph, max(0, left) - pw
        return np.ascontiguousarray(
            img[:, y0 : y0 + min(h, s) + 2 * ph, x0 : x0 + min(w, s) + 2 * pw], dtype=np.float32
        )

    def load_image(self, index: int) -> torch.Tensor:
        """Image ``index`` preprocessed, cropped and resized, without augmentation."""
        x = torch.from_numpy(np.array(self._raw(index), copy=True))
        return self._finish(x, scaled=index in self._scaled)

    def _finish(self, x: torch.Tensor, *, scaled: bool = False) -> torch.Tensor:
        if self.center_crop is not None:
            h, w = x.shape[1:]
            s = self.resize if scaled else self.center_crop  # type: ignore[assignment]
            top, left = max(0, (h - s) // 2), max(0, (w - s) // 2)
            x = x[:, top : top + s, left : left + s]
        if self.resize is not None and tuple(x.shape[1:]) != (self.resize, self.resize):
            x = torch.nn.functional.interpolate(
                x.unsqueeze(0),
                size=(self.resize, self.resize),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
        return x.contiguous()

    def _seed_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if self._generator is None or info is None or self._worker_seeded == info.seed:
            return
        self._generator.manual_seed(int(info.seed % 2**63))
        self._worker_seeded = info.seed

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(np.array(self._raw(index), copy=True))
        if self.augmentation is not None:
            self._seed_worker()
            x = self.augmentation(x, generator=self._generator)
        x = self._finish(x, scaled=index in self._scaled)
        target = torch.from_numpy(np.array(self.data.labels[index], dtype=np.float32))
        if self.return_counts:
            counts = torch.from_numpy(np.array(self.data.counts[index], dtype=np.float32))
            return x, target, counts
        return x, target
