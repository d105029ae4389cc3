"""Postage stamps around sky positions, and a strip of stamps across epochs as PNG.

Wiring: the moving-object stage (or a vetting CLI command) takes a candidate's
detections (exposure path, RA, Dec per epoch), calls :func:`cutouts` once per exposure
and :func:`cutout_strip_png` once per candidate, and stores the PNG path with the
candidate for visual vetting.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.visualization import ImageNormalize, LinearStretch, ZScaleInterval
from astropy.wcs.utils import proj_plane_pixel_scales

from ..errors import InputError
from ..wcsutil import clean_wcs_header, wcs_from_header
from .astrometry import merge_wcs
from .imagehdu import first_image_hdu

__all__ = ["cutout_hdus", "cutout_strip_png", "cutouts"]


def _image(path, hdu):
    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path=path)
    with fits.open(path) as hdul:
        if hdu is None:
            h = first_image_hdu(hdul, path)
        else:
            h = hdul[hdu]
            if h.data is None or h.data.ndim != 2:  # e.g. hdu 0 of a tile-compressed file
                h = first_image_hdu(hdul, path, f"HDU {hdu} holds no 2-D image")
        return np.asarray(h.data, dtype=np.float32), h.header.copy()


def cutouts(path, ra, dec, size_arcsec, *, hdu: int | None = None, return_cutout2d=False, wcs_header=None):
    """Square stamps of one image centred on sky positions.

    Parameters
    ----------
    path : str or os.PathLike
        FITS image (``.fits.fz`` and quoted WCS strings fine).
    ra, dec : float or array_like, shape (n,)
        ICRS centre(s), degrees.
    size_arcsec : float
        Side of the square stamp, arcsec (converted to an odd number of pixels with the
        image's WCS pixel scale, so the target pixel is the central one).
    hdu : int, optional
        0-based HDU; default the first 2-D image HDU.
    return_cutout2d : bool
        Return the :class:`astropy.nddata.Cutout2D` objects (with ``.wcs``,
        ``.position_original``) instead of bare arrays.

    Returns
    -------
    list of ndarray, each shape (s, s), float32
        One stamp per position, NaN where the stamp leaves the image (``mode='partial'``);
        an all-NaN stamp if the position is off the image (``None`` with
        ``return_cutout2d``).

    Raises
    ------
    catdb.errors.InputError
        Missing file, no image, no celestial WCS, non-positive size.
    """
    if not size_arcsec or size_arcsec <= 0:
        raise InputError(f"size_arcsec must be > 0, got {size_arcsec!r}", keyword="size_arcsec")
    data, header = _image(path, hdu)
    if wcs_header is not None:  # the exposure's stored WCS (e.g. from stage solve), in this image's frame
        header = merge_wcs(clean_wcs_header(header, path=path), clean_wcs_header(wcs_header, path=path))
    w = wcs_from_header(header, path=path)
    scale = float(np.mean(proj_plane_pixel_scales(w))) * 3600.0
    npix = max(int(np.round(size_arcsec / scale)), 1)
    npix += (npix + 1) % 2                                      # odd: a central pixel
    coords = SkyCoord(np.atleast_1d(ra), np.atleast_1d(dec), unit="deg", frame="icrs")
    out = []
    for c in coords:                                            # loop over stamps
        try:
            cut = Cutout2D(data, c, (npix, npix), wcs=w, mode="partial", fill_value=np.nan,
                           copy=True)
            out.append(cut if return_cutout2d else cut.data.astype(np.float32))
        except NoOverlapError:
            out.append(None if return_cutout2d else np.full((npix, npix), np.nan, np.float32))
    return out


def cutout_hdus(path, ra, dec, size_arcsec, *, hdu: int | None = None, extra: dict | None = None,
                wcs_header=None):
    """Cutouts as FITS HDU lists carrying the cutout's WCS, ready to write.

    Each stamp is a :class:`astropy.nddata.Cutout2D` (``mode='partial'``, NaN outside the
    image) whose ``wcs`` is written into the header (``CRPIX`` shifted to the cutout;
    Astropy Collaboration 2018, AJ 156, 123), so DS9/TOPCAT/astropy place it on the sky.
    The original pixel position of the centre is kept as ``ORIGX``/``ORIGY`` (0-based),
    and ``extra`` cards are added.

    Parameters
    ----------
    path : str or os.PathLike
        FITS image.
    ra, dec : array_like, shape (n,)
        ICRS centres, degrees.
    size_arcsec : float
        Side of the square stamp, arcsec.
    hdu : int, optional
        0-based HDU; default (or when that HDU holds no image) the first 2-D image HDU.
    extra : dict, optional
        ``{KEYWORD: value or (value, comment)}`` added to every header.

    Returns
    -------
    list of astropy.io.fits.HDUList or None, length n
        ``None`` where the position is off the image.

    Raises
    ------
    catdb.errors.InputError
        As :func:`cutouts`.
    """
    cuts = cutouts(path, ra, dec, size_arcsec, hdu=hdu, return_cutout2d=True, wcs_header=wcs_header)
    out = []
    for cut in cuts:                                            # loop over stamps
        if cut is None:
            out.append(None)
            continue
        h = cut.wcs.to_header()
        h["ORIGX"] = (float(cut.position_original[0]), "[pix] centre x in the source image (0-based)")
        h["ORIGY"] = (float(cut.position_original[1]), "[pix] centre y in the source image (0-based)")
        for k, v in (extra or {}).items():
            h[k] = v
        out.append(fits.HDUList([fits.PrimaryHDU(cut.data.astype(np.float32), header=h)]))
    return out


def cutout_strip_png(images, out_png, *, labels=None, title=None, marker=True,
                     panel_inches=1.6, dpi=100) -> Path:
    """Write a row of stamps (one per epoch) as a PNG for visual vetting.

    Each panel is scaled independently with the IRAF/DS9 zscale algorithm
    (:class:`astropy.visualization.ZScaleInterval`; Tody 1986, SPIE 627, 733), grey, origin
    lower left (north up / east left for a standard WCS), with a cross-hair gap marking
    the centre.

    Parameters
    ----------
    images : sequence of 2-D ndarray
        Stamps, e.g. from :func:`cutouts`; all-NaN stamps are drawn empty.
    out_png : str or os.PathLike
        Output PNG path.
    labels : sequence of str, optional
        One caption per panel (e.g. MJD or exposure number).
    title : str, optional
        Figure title (e.g. candidate id and rate).
    marker : bool
        Draw centre tick marks.
    panel_inches, dpi : float, int
        Panel size and resolution.

    Returns
    -------
    pathlib.Path
        ``out_png``.

    Raises
    ------
    catdb.errors.InputError
        No images, a non-2-D image, or ``labels`` of the wrong length.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = list(images)
    if not images:
        raise InputError("cutout_strip_png needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise InputError(f"{len(labels)} labels for {len(images)} images", keyword="labels")
    n = len(images)
    fig = Figure(figsize=(panel_inches * n, panel_inches + (0.35 if title else 0.15)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, (ax, im) in enumerate(zip(axes, images)):           # loop over panels
        im = np.asarray(im, dtype=float)
        if im.ndim != 2:
            raise InputError(f"image {i} is not 2-D (shape {im.shape})", keyword="images")
        ax.set_xticks([])
        ax.set_yticks([])
        finite = np.isfinite(im)
        if finite.sum() > 10:
            vmin, vmax = ZScaleInterval().get_limits(im[finite])
            ax.imshow(im, origin="lower", cmap="gray", interpolation="nearest",
                      norm=ImageNormalize(vmin=vmin, vmax=vmax, stretch=LinearStretch()))
        else:
            ax.imshow(np.zeros_like(im), origin="lower", cmap="gray", vmin=0, vmax=1)
        if marker:
            cy, cx = (im.shape[0] - 1) / 2, (im.shape[1] - 1) / 2
            g, L = 0.12 * im.shape[0], 0.3 * im.shape[0]
            ax.plot([cx - L, cx - g], [cy, cy], color="tab:red", lw=1)
            ax.plot([cx, cx], [cy + g, cy + L], color="tab:red", lw=1)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 0.88 if title else 1))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png
