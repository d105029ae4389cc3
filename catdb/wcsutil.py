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

#: every keyword astropy/WCSLIB reads for a WCS (Calabretta & Greisen 2002 paper II, SIP, TPV, the
#: distortion paper's CPDIS/DP, IRAF's WAT/LTV/LTM), alternate-axis letters included
_WCS_ANY = re.compile(
    r"^(WCSAXES[A-Z]?|(CTYPE|CUNIT|CRVAL|CDELT|CRPIX|CROTA|CNAME|CRDER|CSYER)\d+[A-Z]?|(PC|CD|PV|PS)\d+_\d+[A-Z]?|"
    r"(LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|WCSNAME|RESTFRQ|RESTFREQ|RESTWAV|SPECSYS|SSYSOBS|VELREF)[A-Z]?|"
    r"EPOCH|MJD-OBS|DATE-OBS|MJDREF[IF]?|MJD-AVG|DATE-AVG|DATEREF|TIMESYS|OBSGEO-[XYZ]|"
    r"(A|B|AP|BP)_(ORDER|DMAX|\d+_\d+)|(CPDIS|CQDIS|DP|DQ|CPERR|CQERR)\d+[A-Z]?(\..+)?|"
    r"NAXIS\d*|WAT\d_\d+|WCSDIM|LTV\d|LTM\d_\d|D2IMDIS\d|D2IM\d(\..+)?|D2IMERR\d)$")


def wcs_subset(header: fits.Header) -> fits.Header:
    """The cards of ``header`` a WCS can depend on (a small header; the input is not modified).

    A catalogue's image header often has about a thousand cards (LCO's ``LDAC_IMHEAD``); building a
    WCS from all of them serialises and re-verifies every card.  The WCS of the subset is the same.
    """
    return fits.Header([c for c in header.cards if _WCS_ANY.match(c.keyword or "")])


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
    h = clean_wcs_header(wcs_subset(header), path=path)
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
