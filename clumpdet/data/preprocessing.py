"""Preprocessing that travels with a model: band selection, stretch, per-band mean/std.

A :class:`Preprocessing` is stored inside every checkpoint (:meth:`Preprocessing.to_dict`),
so a trained model is always fed images prepared exactly as during training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.config import from_dict as _config_from_dict
from clumpdet.config import to_dict as _config_to_dict
from clumpdet.data.images import ImageData, read_model_input, select_bands
from clumpdet.data.stretch import apply_stretch, check_stretch
from clumpdet.errors import ConfigError, InputError

_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_safe(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_safe(v) for v in value)
    return False


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Turn an image into network input: select bands, stretch, then ``(x - mean) / std``.

    Parameters
    ----------
    bands : tuple of str
        Band names, in network channel order. Default ``("g", "r", "i")`` (SDSS-like clumps).
    stretch : str
        Registered stretch (:func:`clumpdet.data.stretch.list_stretches`). Default ``"asinh"``.
    stretch_params : mapping
        Keyword parameters of the stretch (JSON scalars). Default ``{}``: for ``asinh`` the
        softening is 3 x the per-band MAD noise sigma of each image.
    mean, std : tuple of float
        Per-band normalisation applied after the stretch; empty means 0 and 1 for every band.

    Examples
    --------
    >>> import numpy as np
    >>> prep = Preprocessing(bands=("r",), stretch="linear", mean=(0.5,), std=(0.25,))
    >>> prep(np.ones((1, 4, 4))).shape
    (1, 4, 4)
    """

    bands: tuple[str, ...] = ("g", "r", "i")
    stretch: str = "asinh"
    stretch_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        bands = tuple(str(b) for b in self.bands)
        n = len(bands)
        if n == 0:
            raise ConfigError("preprocessing: bands must not be empty")
        if len(set(bands)) != n:
            raise ConfigError(f"preprocessing: repeated band names in {bands}")
        mean = tuple(float(m) for m in self.mean) or (0.0,) * n
        std = tuple(float(s) for s in self.std) or (1.0,) * n
        if len(mean) != n or len(std) != n:
            raise ConfigError(
                f"preprocessing: {n} bands {bands} but {len(mean)} mean and {len(std)} std values"
            )
        if not all(math.isfinite(m) for m in mean) or not all(
            math.isfinite(s) and s > 0 for s in std
        ):
            raise ConfigError(
                f"preprocessing: mean must be finite and std finite and > 0, got {mean}, {std}"
            )
        params = dict(self.stretch_params)
        bad = [k for k, v in params.items() if not isinstance(k, str) or not _json_safe(v)]
        if bad:
            raise ConfigError(f"preprocessing: stretch_params {bad} are not JSON scalars")
        check_stretch(self.stretch, params)
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "stretch_params", types.MappingProxyType(params))

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def n_bands(self) -> int:
        """Number of network input channels."""
        return len(self.bands)

    def _select(self, image: ImageData | np.ndarray) -> np.ndarray:
        if isinstance(image, ImageData):
            return select_bands(image, self.bands).data
        data = np.asarray(image)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise InputError(None, f"expected a (C, H, W) image array, got shape {data.shape}")
        if data.shape[0] != self.n_bands:
            raise InputError(
                None,
                f"expected {self.n_bands} bands ({', '.join(self.bands)}), found {data.shape[0]}",
            )
        return data

    def stretch_only(self, image: ImageData | np.ndarray) -> np.ndarray:
        """Band selection and stretch, without the mean/std normalisation (float32 (C, H, W))."""
        return apply_stretch(self._select(image), self.stretch, **self.stretch_params)

    def __call__(self, image: ImageData | np.ndarray) -> np.ndarray:
        """Preprocess one image.

        Parameters
        ----------
        image : ImageData or ndarray, shape (C, H, W)
            An :class:`ImageData` has its bands selected/reordered by name; a bare array must
            already have ``len(bands)`` planes in this order.

        Returns
        -------
        ndarray, float32, shape (len(bands), H, W)

        Raises
        ------
        InputError
            Missing bands or wrong band count (naming the image's file when known).
        """
        out = self.stretch_only(image)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return np.ascontiguousarray((out - mean) / std, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (lists, str, float) that :meth:`from_dict` turns back exactly."""
        return _config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output; unknown keys or bad values -> ConfigError."""
        return _config_from_dict(cls, data, where="preprocessing")

    def fit_normalisation(
        self, images: Iterable[ImageData | np.ndarray | str | Path]
    ) -> Preprocessing:
        """Estimate per-band mean/std of the *stretched* pixels over a sample of images.

        Parameters
        ----------
        images : iterable of ImageData, ndarray (C, H, W) or file paths
            The sample (e.g. a few hundred training images); files are read with
            :func:`~clumpdet.data.images.read_model_input` and this object's ``bands``.

        Returns
        -------
        Preprocessing
            A copy with ``mean`` and ``std`` set (std of a constant band is 1).

        Raises
        ------
        InputError
            Empty sample, or an image with the wrong bands.
        """
        n = self.n_bands
        total = np.zeros(n)
        total_sq = np.zeros(n)
        count = 0
        for image in images:
            if isinstance(image, (str, Path)):
                image = read_model_input(image, self.bands)
            x = self.stretch_only(image).astype(np.float64).reshape(n, -1)
            total += x.sum(axis=1)
            total_sq += np.square(x).sum(axis=1)
            count += x.shape[1]
        if count == 0:
            raise InputError(None, "fit_normalisation: no images (or only empty images) given")
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        std = np.sqrt(var)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return dataclasses.replace(
            self, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std)
        )
