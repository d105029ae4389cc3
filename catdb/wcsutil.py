"""WCS construction that survives real observatory headers.

Some instruments (e.g. Lowell's 42-inch LOJ camera) write the WCS cards
``CRVAL*``, ``CRPIX*``, ``CD*_*``, ``PV*_*`` as quoted strings.  astropy's
:class:`~astropy.wcs.WCS` does not fail on them: it silently ignores them and
puts the field at RA 0, Dec 0.  :func:`wcs_from_header` casts such cards to
float first and refuses a WCS that resolves to (0, 0) from a non-zero header.
"""
from __future__ import annotations

import re
import warnings

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .errors import InputError

_NUMERIC_WCS = re.compile(
    r"^(CRVAL\d|CRPIX\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|EQUINOX|EPOCH|LONPOLE|LATPOLE|"
    r"A_\d+_\d+|B_\d+_\d+|AP_\d+_\d+|BP_\d+_\d+|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|WCSAXES|NAXIS\d?)$"
)


def clean_wcs_header(header: fits.Header, path=None) -> fits.Header:
    """Return a copy of ``header`` with string-valued numeric WCS cards cast to numbers.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Image or catalogue header.
    path : str, optional
        File name, used in error messages.

    Returns
    -------
    astropy.io.fits.Header
        A copy; the input is not modified.

    Raises
    ------
    catdb.errors.InputError
        If a WCS card holds a string that is not a number.
    """
    out = header.copy()
    for card in header.cards:
        key = card.keyword
        if _NUMERIC_WCS.match(key or "") and isinstance(card.value, str):
            text = card.value.strip()
            try:
                value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text.replace("D", "E"))
            except ValueError:
                raise InputError(f"WCS keyword holds {card.value!r}, expected a number",
                                 path=path, keyword=key) from None
            out[key] = value
    return out


def wcs_from_header(header: fits.Header, path=None) -> WCS:
    """Build a celestial WCS from a header, casting quoted numeric cards first.

    Parameters
    ----------
    header : astropy.io.fits.Header
    path : str, optional
        File name, used in error messages.

    Returns
    -------
    astropy.wcs.WCS
        The celestial part of the header's WCS.

    Raises
    ------
    catdb.errors.InputError
        If the header has no celestial WCS, or the WCS puts the reference pixel
        at RA 0, Dec 0 although CRVAL in the header is not zero (the silent
        failure mode of astropy on unparsed cards).
    """
    h = clean_wcs_header(header, path=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(h, relax=True, fix=True)
    if not w.has_celestial:
        raise InputError("no celestial WCS (CTYPE1/CTYPE2 RA---/DEC--) in header", path=path,
                         keyword="CTYPE1")
    w = w.celestial
    crval = [h.get("CRVAL1", 0.0), h.get("CRVAL2", 0.0)]
    if (abs(float(crval[0])) > 0 or abs(float(crval[1])) > 0) and all(abs(v) < 1e-12 for v in w.wcs.crval):
        raise InputError(f"WCS resolves to RA 0, Dec 0 but header CRVAL is {crval}", path=path,
                         keyword="CRVAL1")
    return w
