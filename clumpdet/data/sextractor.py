"""Read SExtractor ASCII_HEAD catalogues (the reference catalogues astronomers already have)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clumpdet.errors import InputError


def read_sextractor_catalogue(path: str | Path) -> pd.DataFrame:
    """Read an ``ASCII_HEAD`` SExtractor catalogue and add corner-origin positions.

    Parameters
    ----------
    path : str or Path
        Catalogue written with ``CATALOG_TYPE ASCII_HEAD`` (``#   1 NUMBER ...`` header lines).

    Returns
    -------
    pandas.DataFrame
        The catalogue's columns (vector columns such as ``FLUX_RADIUS`` expanded as
        ``FLUX_RADIUS``, ``FLUX_RADIUS_1`` ...) plus ``x``, ``y``: ``X_IMAGE - 0.5``,
        ``Y_IMAGE - 0.5`` (SExtractor's 1-based pixel centres to clumpdet's corner-origin
        pixels, docs/conventions.md), and ``snr``: ``FLUX_AUTO / FLUXERR_AUTO``, falling back to
        the first aperture where AUTO is missing or zero.

    Raises
    ------
    InputError
        Missing or unreadable file, or no ``X_IMAGE`` / ``Y_IMAGE`` columns.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "catalogue file not found")
    try:
        table = Table.read(path, format="ascii.sextractor")
    except Exception as exc:  # astropy raises many types for malformed text
        raise InputError(path, f"not a readable SExtractor ASCII_HEAD catalogue ({exc})") from None
    df = table.to_pandas()
    for col in ("X_IMAGE", "Y_IMAGE"):
        if col not in df:
            raise InputError(path, f"no {col} column (have {list(df.columns)})")
    df["x"] = df["X_IMAGE"].astype(float) - 0.5
    df["y"] = df["Y_IMAGE"].astype(float) - 0.5
    snr = np.full(len(df), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if {"FLUX_AUTO", "FLUXERR_AUTO"} <= set(df):
            ok = df["FLUXERR_AUTO"].to_numpy(float) > 0
            snr[ok] = (df["FLUX_AUTO"] / df["FLUXERR_AUTO"]).to_numpy(float)[ok]
        if {"FLUX_APER", "FLUXERR_APER"} <= set(df):
            fill = ~np.isfinite(snr) & (df["FLUXERR_APER"].to_numpy(float) > 0)
            snr[fill] = (df["FLUX_APER"] / df["FLUXERR_APER"]).to_numpy(float)[fill]
    df["snr"] = snr
    return df
