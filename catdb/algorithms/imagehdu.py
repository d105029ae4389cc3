"""Which HDU of an open FITS file holds the image (plain or tile-compressed files alike).

A tile-compressed file (``.fits.fz``) keeps its image in HDU 1 behind an empty primary HDU;
an MEF keeps one image per extension.  "The image" is the first HDU holding 2-D pixel data
unless the caller names one.
"""
from __future__ import annotations

from ..errors import InputError

__all__ = ["first_image_hdu", "is_2d_image"]


def is_2d_image(hdu) -> bool:
    """True when ``hdu`` (an astropy HDU) is an image HDU with 2-D pixel data."""
    return bool(hdu.is_image and hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2)


def first_image_hdu(hdul, path, message: str = "no 2-D image HDU in file"):
    """The first HDU of ``hdul`` holding a 2-D image.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
    path : str or os.PathLike
        The file, named in the error.
    message : str
        Text of the error when no HDU holds a 2-D image.

    Returns
    -------
    astropy HDU

    Raises
    ------
    catdb.errors.InputError
        No HDU of ``hdul`` holds a 2-D image.
    """
    for h in hdul:
        if is_2d_image(h):
            return h
    raise InputError(message, path=path)
