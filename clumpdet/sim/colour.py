"""8-bit gri colour composites of simulated scenes: the images Galaxy Zoo volunteers saw.

One place for the mapping from a ``g, r, i`` cube in nanomaggies to an SDSS-style colour JPEG:

1. **Framing** (Galaxy Zoo 2 cutouts): a square of ``size`` pixels (424) centred on the host at
   ``frame_r90 * petroR90_r`` arcsec per pixel (GZ2: 0.02), i.e. the cutout spans
   ``size * frame_r90 = 8.48`` Petrosian R90 radii whatever the galaxy's size. The cube is resampled
   bilinearly (``scipy.ndimage.map_coordinates``, order 1) from the simulated canvas; where the
   frame reaches past the canvas, sky noise of the scene's own per-band sigma fills it (a documented
   fallback; the realistic simulator renders a canvas large enough for almost every host).
2. **Colour** (Lupton et al. 2004 asinh, as SDSS composites): red = i, green = r, blue = g, each
   band multiplied by ``scales[band]`` (nanomaggy -> display units) and passed through
   ``astropy.visualization.make_lupton_rgb(i, r, g, minimum, stretch, Q)``.
3. **Compression**: baseline JPEG (Pillow, 4:2:0 chroma subsampling) at ``quality`` 75, the
   quantisation tables of the real GZ2 files.

The pixel mapping from the FITS frame to the colour frame is :class:`ColourFrame` (an isotropic
scale plus a shift and the vertical flip below), used for the image and the truth boxes alike.

Orientation: a picture's row 0 is its top row, a FITS array's row 0 its bottom row
(:mod:`clumpdet.data.images`). The colour image shows the sky the same way up as the FITS image
displayed with ``origin="lower"`` (north up, as the SDSS / GZ2 cutouts), so its array is the
resampled cube flipped vertically, and a FITS-frame ``y`` maps to ``size - (y - y0) / zoom``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Channel order of every colour composite written here: (red, green, blue) = (i, r, g).
RGB_BANDS: tuple[str, str, str] = ("i", "r", "g")


@dataclass(frozen=True)
class ColourFrame:
    """Affine map from canvas pixels (corner origin) to colour-image pixels.

    ``u = (x - x0) / zoom`` with ``zoom`` canvas pixels per colour pixel; ``x0`` is the canvas
    position of the colour image's corner.
    """

    x0: float
    y0: float
    zoom: float
    size: int

    def to_colour(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[Any, Any]:
        """Canvas pixel coordinates -> colour-image pixel coordinates (picture rows, flipped)."""
        u = (np.asarray(x) - self.x0) / self.zoom
        v = self.size - (np.asarray(y) - self.y0) / self.zoom
        return u, v

    def box(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 4)`` xyxy in canvas pixels -> colour pixels, clipped to the image."""
        b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        u1, v2 = self.to_colour(b[:, 0], b[:, 1])
        u2, v1 = self.to_colour(b[:, 2], b[:, 3])
        out = np.stack([u1, v1, u2, v2], axis=1)
        return np.clip(out, 0.0, float(self.size)).astype(np.float32)


def gz2_frame(
    *, cx: float, cy: float, r90_arcsec: float, pixel_scale: float, size: int, frame_r90: float
) -> ColourFrame:
    """GZ2 framing: ``size`` px at ``frame_r90 * r90`` arcsec/px centred on ``(cx, cy)``.

    Parameters
    ----------
    cx, cy : float
        Host centre in canvas pixels.
    r90_arcsec : float
        Petrosian R90 of the host in r, arcsec.
    pixel_scale : float
        Canvas arcsec per pixel.
    size : int
        Side of the colour image, pixels.
    frame_r90 : float
        Colour-image arcsec per pixel in units of R90 (GZ2: 0.02).
    """
    zoom = frame_r90 * r90_arcsec / pixel_scale
    half = 0.5 * size * zoom
    return ColourFrame(x0=cx - half, y0=cy - half, zoom=zoom, size=int(size))


def resample(
    cube: np.ndarray,
    frame: ColourFrame,
    *,
    fill_sigma: np.ndarray,
    rng: np.random.Generator,
    smooth: float = 0.0,
) -> np.ndarray:
    """Resample a ``(C, H, W)`` cube into the colour frame (bilinear; flux per pixel kept as
    surface brightness, so a pixel's value is that of the canvas at its centre).

    Pixels outside the canvas get Gaussian sky noise of ``fill_sigma[c]`` (per band).
    ``smooth`` > 0 first convolves each band with a Gaussian of that sigma (canvas pixels), a
    smoothing resampling kernel; the fill noise is scaled down by the same factor as the
    canvas noise, ``1 / (2 sqrt(pi) smooth)`` for ``smooth`` >= 0.5.

    Returns
    -------
    ndarray, shape (C, size, size), float64
        In picture row order (row 0 at the top: flipped relative to the canvas).
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    c, h, w = cube.shape
    noise_factor = 1.0
    if smooth > 0:
        cube = np.stack([gaussian_filter(cube[k], smooth, mode="nearest") for k in range(c)])
        noise_factor = min(1.0, 1.0 / (2.0 * math.sqrt(math.pi) * smooth))
    u = (np.arange(frame.size) + 0.5) * frame.zoom + frame.x0 - 0.5
    v = (np.arange(frame.size) + 0.5) * frame.zoom + frame.y0 - 0.5
    vv, uu = np.meshgrid(v, u, indexing="ij")
    inside = (uu >= -0.5) & (uu <= w - 0.5) & (vv >= -0.5) & (vv <= h - 0.5)
    out = np.empty((c, frame.size, frame.size), dtype=np.float64)
    coords = np.stack([vv.ravel(), uu.ravel()])
    for k in range(c):
        out[k] = map_coordinates(cube[k], coords, order=1, mode="nearest").reshape(uu.shape)
        if not inside.all():
            # noise resampled bilinearly from the native grid has ~0.6x the per-pixel sigma at
            # typical zooms; plain white noise of the native sigma is a slightly noisier fill
            fill = rng.standard_normal(out[k].shape) * fill_sigma[k] * noise_factor
            fill *= min(1.0, 1.0 / frame.zoom)
            out[k][~inside] = fill[~inside]
    return out[:, ::-1]


def lupton_rgb(
    planes: dict[str, np.ndarray],
    *,
    scales: dict[str, float],
    stretch: float,
    q: float,
    minimum: float,
) -> np.ndarray:
    """Lupton et al. (2004) asinh composite, red = i, green = r, blue = g.

    Parameters
    ----------
    planes : {band: ndarray (H, W)}
        Images in nanomaggies per pixel (at least g, r, i).
    scales : {band: float}
        Multipliers applied before the stretch.
    stretch, q, minimum : float
        ``make_lupton_rgb`` parameters (display units).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    from astropy.visualization import make_lupton_rgb

    red, green, blue = (planes[b] * scales[b] for b in RGB_BANDS)
    with np.errstate(invalid="ignore", divide="ignore"):  # astropy divides 0 / 0 off-source
        return make_lupton_rgb(red, green, blue, minimum=minimum, stretch=stretch, Q=q)


def encode_jpeg(rgb: np.ndarray, *, quality: int) -> bytes:
    """Baseline JPEG bytes of an ``(H, W, 3)`` uint8 image (4:2:0, as the SDSS/GZ2 files)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(
        buf, format="JPEG", quality=int(quality), subsampling=2
    )
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to an ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def pad_to_frame(
    cube: np.ndarray, frame: ColourFrame, *, sigma: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ColourFrame]:
    """Extend a ``(C, H, W)`` canvas with Gaussian sky noise (``sigma[c]`` per band) so that it
    covers the colour frame; returns the cube and the frame shifted to its new origin."""
    c, h, w = cube.shape
    half = 0.5 * frame.size * frame.zoom
    lo_x = max(0, math.ceil(-frame.x0) + 1)
    lo_y = max(0, math.ceil(-frame.y0) + 1)
    hi_x = max(0, math.ceil(frame.x0 + 2 * half - w) + 1)
    hi_y = max(0, math.ceil(frame.y0 + 2 * half - h) + 1)
    if not (lo_x or lo_y or hi_x or hi_y):
        return cube, frame
    big = (
        rng.standard_normal((c, h + lo_y + hi_y, w + lo_x + hi_x))
        * np.asarray(sigma)[:, None, None]
    )
    big[:, lo_y : lo_y + h, lo_x : lo_x + w] = cube
    moved = ColourFrame(x0=frame.x0 + lo_x, y0=frame.y0 + lo_y, zoom=frame.zoom, size=frame.size)
    return big, moved


def native_jpeg(
    cube: np.ndarray,
    *,
    scales: dict[str, float],
    stretch: float,
    q: float,
    minimum: float,
    quality: int,
) -> np.ndarray:
    """The survey's own colour JPEG of a ``g, r, i`` canvas at its native pixel scale.

    SDSS colour cutouts (as GZ2's) were resampled from colour JPEGs of whole frames rendered at
    the native 0.396"/px, not from the FITS: the frame's JPEG blocks, quantised sky noise
    included, are magnified with the cutout, which gives the real images' coarse, streaky
    noise texture.

    Parameters
    ----------
    cube : ndarray, shape (3, H, W)
        ``g, r, i`` nanomaggies per pixel, FITS row order.

    Returns
    -------
    ndarray, shape (3, H, W), float64
        Channels (red, green, blue) = (i, r, g), 0..255, FITS row order.
    """
    planes = dict(zip(("g", "r", "i"), cube))
    rgb = lupton_rgb(planes, scales=scales, stretch=stretch, q=q, minimum=minimum)
    rgb = decode_jpeg(encode_jpeg(rgb[::-1], quality=quality))[::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float64)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def petrosian_r90(r50: float, concentration: float) -> float:
    """Petrosian R90 from a half-light radius and R90/R50 (exponential ~2.3, de Vaucouleurs ~3)."""
    return float(r50 * concentration) if math.isfinite(r50) else float("nan")
