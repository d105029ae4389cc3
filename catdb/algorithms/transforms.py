"""Photometric transformations between reference catalogues and standard bands.

A reference catalogue rarely has the band of the exposure; these published
colour transformations give the magnitude in the target band from the
catalogue's own bands.  Every relation has the form::

    target = base + sign * sum_k coeffs[k] * colour**k,  colour = a - b

and is valid only inside the colour range(s) the authors fitted.  The error
is the photometric errors propagated through the relation (exact partial
derivatives), plus the published scatter (rms) of the relation and, where the
authors give them instead, the coefficient errors.

Relations and their sources
---------------------------
``PS1`` (Pan-STARRS1, AB) -> SDSS g r i z and Johnson-Cousins B V R I
    Tonry et al. 2012, ApJ 750, 99, Table 6 (quadratic fits in (g-r)_P1; the
    linear fits of the same table for B V R I as ``variant='linear'``).  The
    table states no colour limits; catdb accepts -0.3 < (g-r)_P1 < 1.5, the
    stellar locus over which the fits were made.
``SDSS`` (also APASS g'r'i', AB) -> Johnson-Cousins B V R I
    Chonis & Gaskell 2008, AJ 135, 264, with PP's validity cuts
    0.2 < g-r < 1.4 and 0.08 < r-i < 0.5 (Mommert 2017, ``catalog.py``).
``GaiaDR3`` (Gaia DR3 = EDR3 G, BP, RP, Vega) -> V R I (Johnson-Cousins) and g r i (SDSS)
    Gaia DR3 documentation, Sect. 5.5.1, Table 5.9 (Riello et al. 2021, A&A
    649, A3, Tables C.1/C.2), polynomials in BP-RP with the ranges of Table C.1.
    Not valid for Gaia DR2 photometry.
``2MASS`` (J H Ks, Vega) -> UKIRT WFCAM Z Y J H K
    Hodgkin et al. 2009, MNRAS 394, 675, Eqs. 4-8, for -0.1 < J-H < 1.0 (the
    cut PP applies).  The paper gives no scatter for the relations; only the
    photometric errors are propagated.

Band names in the ``mags`` dicts: ``g r i z`` (PS1, SDSS), ``G BP RP`` (Gaia),
``J H K`` (2MASS; ``Ks`` accepted).  Target bands: ``g r i z`` (SDSS),
``B V R I`` (Johnson-Cousins; ``Rc``/``Ic`` accepted), ``Z Y J H K`` (UKIRT).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Transformation", "REGISTRY", "available", "get_transformation", "transform",
           "normalise_catalog"]


@dataclass(frozen=True)
class Transformation:
    """One published colour transformation.

    Attributes
    ----------
    catalog : str
        Source system (``'PS1'``, ``'SDSS'``, ``'GaiaDR3'``, ``'2MASS'``).
    target : str
        Target band name.
    target_system : str
        Photometric system of the result (``'SDSS'``, ``'Johnson-Cousins'``,
        ``'UKIRT-WFCAM'``) and magnitude system in brackets.
    base : str
        Catalogue band the colour correction is added to.
    colour : (str, str)
        Colour ``a - b`` the polynomial is evaluated at.
    coeffs : tuple of float
        Polynomial coefficients in ascending powers of the colour.
    sign : float
        +1 for ``target = base + P``, -1 for ``target = base - P`` (Gaia
        tabulates ``G - X``).
    scatter : float
        Published rms of the relation (mag), added in quadrature.
    limits : tuple of (str, str, float, float)
        Validity: every colour ``a - b`` must lie in ``[lo, hi]``.
    reference : str
        Paper / document and table.
    coeff_errs : tuple of float
        Published errors of the coefficients (ascending powers), if any.
    variant : str
        ``'default'`` or e.g. ``'linear'``.
    """

    catalog: str
    target: str
    target_system: str
    base: str
    colour: tuple
    coeffs: tuple
    sign: float
    scatter: float
    limits: tuple
    reference: str
    coeff_errs: tuple = ()
    variant: str = "default"
    needs: frozenset = field(init=False)

    def __post_init__(self):
        bands = {self.base, *self.colour}
        for a, b, _, _ in self.limits:
            bands |= {a, b}
        object.__setattr__(self, "needs", frozenset(bands))

    def apply(self, mags, errs=None):
        """Evaluate the transformation on whole arrays.

        Parameters
        ----------
        mags : dict of str -> array_like, shape (N,)
            Catalogue magnitudes, keyed by band (at least :attr:`needs`).
        errs : dict of str -> array_like, shape (N,), optional
            Their errors (mag); treated as 0 where missing.

        Returns
        -------
        mag, err : numpy.ndarray, shape (N,)
            Transformed magnitude and error (mag); NaN where not valid.
        valid : numpy.ndarray of bool, shape (N,)
            Inputs finite and every validity colour inside its range.

        Raises
        ------
        KeyError
            If a needed band is missing from ``mags``.
        """
        missing = sorted(self.needs - set(mags))
        if missing:
            raise KeyError(f"{self.catalog} -> {self.target} needs bands {sorted(self.needs)}; "
                           f"missing {missing}")
        m = {b: np.asarray(mags[b], dtype=float) for b in self.needs}
        e = {b: (np.zeros_like(m[b]) if errs is None or b not in errs
                 else np.asarray(errs[b], dtype=float)) for b in self.needs}
        a, b = self.colour
        x = m[a] - m[b]
        p = np.polynomial.polynomial.polyval(x, self.coeffs)
        dp = np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyder(self.coeffs))
        mag = m[self.base] + self.sign * p
        # d mag / d band: 1 for the base, +-sign*P'(x) for the colour bands
        deriv = {band: np.zeros_like(x) for band in self.needs}
        deriv[self.base] = deriv[self.base] + 1.0
        deriv[a] = deriv[a] + self.sign * dp
        deriv[b] = deriv[b] - self.sign * dp
        var = sum((deriv[band] * e[band]) ** 2 for band in self.needs)
        var = var + self.scatter ** 2
        for k, sk in enumerate(self.coeff_errs):
            var = var + (sk * x ** k) ** 2
        err = np.sqrt(var)
        valid = np.ones(x.shape, bool)
        for band in self.needs:
            valid &= np.isfinite(m[band]) & np.isfinite(e[band])
        with np.errstate(invalid="ignore"):
            for ca, cb, lo, hi in self.limits:
                col = m[ca] - m[cb]
                valid &= (col >= lo) & (col <= hi)
        mag = np.where(valid, mag, np.nan)
        err = np.where(valid, err, np.nan)
        return mag, err, valid


_TONRY = "Tonry et al. 2012, ApJ 750, 99, Table 6"
_CG = "Chonis & Gaskell 2008, AJ 135, 264 (as used in PP, Mommert 2017)"
_GAIA = ("Gaia DR3 documentation Sect. 5.5.1 Table 5.9; Riello et al. 2021, A&A 649, A3, "
         "Tables C.1-C.2")
_HODGKIN = "Hodgkin et al. 2009, MNRAS 394, 675, Eqs. 4-8"
_PS1_LIM = (("g", "r", -0.3, 1.5),)
_CG_LIM = (("g", "r", 0.2, 1.4), ("r", "i", 0.08, 0.5))
_HOD_LIM = (("J", "H", -0.1, 1.0),)
_JC = "Johnson-Cousins (Vega)"

_ALL = [
    # Pan-STARRS1 -> SDSS (AB), quadratic fits in (g-r)_P1
    Transformation("PS1", "g", "SDSS (AB)", "g", ("g", "r"), (0.013, 0.145, 0.019), 1, 0.008, _PS1_LIM, _TONRY),
    Transformation("PS1", "r", "SDSS (AB)", "r", ("g", "r"), (-0.001, 0.004, 0.007), 1, 0.004, _PS1_LIM, _TONRY),
    Transformation("PS1", "i", "SDSS (AB)", "i", ("g", "r"), (-0.005, 0.011, 0.010), 1, 0.004, _PS1_LIM, _TONRY),
    Transformation("PS1", "z", "SDSS (AB)", "z", ("g", "r"), (0.013, -0.039, -0.012), 1, 0.010, _PS1_LIM, _TONRY),
    # Pan-STARRS1 -> Johnson-Cousins (Vega)
    Transformation("PS1", "B", _JC, "g", ("g", "r"), (0.212, 0.556, 0.034), 1, 0.032, _PS1_LIM, _TONRY),
    Transformation("PS1", "V", _JC, "r", ("g", "r"), (0.005, 0.462, 0.013), 1, 0.012, _PS1_LIM, _TONRY),
    Transformation("PS1", "R", _JC, "r", ("g", "r"), (-0.137, -0.108, -0.029), 1, 0.015, _PS1_LIM, _TONRY),
    Transformation("PS1", "I", _JC, "i", ("g", "r"), (-0.366, -0.136, -0.018), 1, 0.017, _PS1_LIM, _TONRY),
    Transformation("PS1", "B", _JC, "g", ("g", "r"), (0.213, 0.587), 1, 0.034, _PS1_LIM, _TONRY, variant="linear"),
    Transformation("PS1", "V", _JC, "r", ("g", "r"), (0.006, 0.474), 1, 0.012, _PS1_LIM, _TONRY, variant="linear"),
    Transformation("PS1", "R", _JC, "r", ("g", "r"), (-0.138, -0.131), 1, 0.015, _PS1_LIM, _TONRY, variant="linear"),
    Transformation("PS1", "I", _JC, "i", ("g", "r"), (-0.367, -0.149), 1, 0.016, _PS1_LIM, _TONRY, variant="linear"),
    # SDSS -> Johnson-Cousins (Chonis & Gaskell 2008): coefficient errors, no rms
    Transformation("SDSS", "B", _JC, "g", ("g", "r"), (0.216, 0.327), 1, 0.0, _CG_LIM, _CG,
                   coeff_errs=(0.027, 0.047)),
    Transformation("SDSS", "V", _JC, "g", ("g", "r"), (-0.011, -0.587), 1, 0.0, _CG_LIM, _CG,
                   coeff_errs=(0.011, 0.022)),
    Transformation("SDSS", "R", _JC, "r", ("r", "i"), (-0.159, -0.272), 1, 0.0, _CG_LIM, _CG,
                   coeff_errs=(0.022, 0.092)),
    Transformation("SDSS", "I", _JC, "i", ("r", "i"), (-0.370, -0.337), 1, 0.0, _CG_LIM, _CG,
                   coeff_errs=(0.041, 0.191)),
    # Gaia DR3 (= EDR3) G - X polynomials in BP-RP
    Transformation("GaiaDR3", "V", _JC, "G", ("BP", "RP"), (-0.02704, 0.01424, -0.2156, 0.01426), -1, 0.03017,
                   (("BP", "RP", -0.5, 5.0),), _GAIA),
    Transformation("GaiaDR3", "R", _JC, "G", ("BP", "RP"), (-0.02275, 0.3961, -0.1243, -0.01396, 0.003775), -1,
                   0.03167, (("BP", "RP", 0.0, 4.0),), _GAIA),
    Transformation("GaiaDR3", "I", _JC, "G", ("BP", "RP"), (0.01753, 0.76, -0.0991), -1, 0.03765,
                   (("BP", "RP", -0.5, 4.5),), _GAIA),
    Transformation("GaiaDR3", "g", "SDSS (AB)", "G", ("BP", "RP"), (0.2199, -0.6365, -0.1548, 0.0064), -1, 0.0745,
                   (("BP", "RP", 0.3, 3.0),), _GAIA),
    Transformation("GaiaDR3", "r", "SDSS (AB)", "G", ("BP", "RP"), (-0.09837, 0.08592, 0.1907, -0.1701, 0.02263),
                   -1, 0.03776, (("BP", "RP", 0.0, 3.0),), _GAIA),
    Transformation("GaiaDR3", "i", "SDSS (AB)", "G", ("BP", "RP"), (-0.293, 0.6404, -0.09609, -0.002104), -1,
                   0.04092, (("BP", "RP", 0.5, 2.0),), _GAIA),
    # 2MASS -> UKIRT WFCAM (Vega)
    Transformation("2MASS", "Z", "UKIRT-WFCAM (Vega)", "J", ("J", "H"), (0.0, 0.95), 1, 0.0, _HOD_LIM, _HODGKIN),
    Transformation("2MASS", "Y", "UKIRT-WFCAM (Vega)", "J", ("J", "H"), (0.08, 0.50), 1, 0.0, _HOD_LIM, _HODGKIN),
    Transformation("2MASS", "J", "UKIRT-WFCAM (Vega)", "J", ("J", "H"), (0.0, -0.065), 1, 0.0, _HOD_LIM, _HODGKIN),
    Transformation("2MASS", "H", "UKIRT-WFCAM (Vega)", "H", ("J", "K"), (-0.030, 0.070), 1, 0.0, _HOD_LIM, _HODGKIN),
    Transformation("2MASS", "K", "UKIRT-WFCAM (Vega)", "K", ("J", "K"), (0.0, 0.010), 1, 0.0, _HOD_LIM, _HODGKIN),
]

#: All transformations keyed by ``(catalog, target, variant)``.
REGISTRY = {(t.catalog, t.target, t.variant): t for t in _ALL}

_CATALOG_ALIASES = {
    "ps1": "PS1", "panstarrs": "PS1", "pan-starrs": "PS1", "panstarrs1": "PS1", "pan-starrs1": "PS1",
    "ps1dr1": "PS1", "ps1dr2": "PS1",
    "sdss": "SDSS", "apass": "SDSS", "apass9": "SDSS",
    "gaiadr3": "GaiaDR3", "gaiaedr3": "GaiaDR3", "gaia": "GaiaDR3", "gaia-dr3": "GaiaDR3",
    "gaia-edr3": "GaiaDR3", "dr3": "GaiaDR3",
    "2mass": "2MASS", "twomass": "2MASS",
}
_TARGET_ALIASES = {"Rc": "R", "Ic": "I", "RC": "R", "IC": "I", "Ks": "K"}


def normalise_catalog(catalog: str) -> str:
    """Canonical catalogue name (``'PS1'``, ``'SDSS'``, ``'GaiaDR3'``, ``'2MASS'``).

    Raises
    ------
    ValueError
        For an unknown catalogue (Gaia DR2 is refused: the relations are for
        DR3/EDR3 photometry).
    """
    key = catalog.strip().lower().replace("_", "-").replace(" ", "")
    if key in _CATALOG_ALIASES:
        return _CATALOG_ALIASES[key]
    if key.replace("-", "") in _CATALOG_ALIASES:
        return _CATALOG_ALIASES[key.replace("-", "")]
    raise ValueError(f"no transformations for catalogue {catalog!r}; known: "
                     f"{sorted({t.catalog for t in _ALL})}")


def available(catalog: str | None = None):
    """List the available transformations.

    Parameters
    ----------
    catalog : str, optional
        Restrict to one source catalogue (aliases accepted).

    Returns
    -------
    list of Transformation
        In registry order.
    """
    cat = None if catalog is None else normalise_catalog(catalog)
    return [t for t in _ALL if cat is None or t.catalog == cat]


def get_transformation(catalog: str, target_band: str, variant: str = "default") -> Transformation:
    """Look up one transformation.

    Raises
    ------
    KeyError
        If there is no such transformation (the message lists what exists).
    """
    cat = normalise_catalog(catalog)
    tgt = _TARGET_ALIASES.get(target_band, target_band)
    try:
        return REGISTRY[(cat, tgt, variant)]
    except KeyError:
        have = sorted({(t.target, t.variant) for t in _ALL if t.catalog == cat})
        raise KeyError(f"no transformation {cat} -> {target_band} ({variant}); {cat} offers {have}") from None


def transform(catalog: str, target_band: str, mags, errs=None, variant: str = "default"):
    """Magnitudes of reference stars in ``target_band`` from their catalogue bands.

    Parameters
    ----------
    catalog : str
        Source catalogue (``'PS1'``, ``'SDSS'``/``'APASS'``, ``'GaiaDR3'``,
        ``'2MASS'``; case-insensitive aliases).
    target_band : str
        Target band (see module docstring).
    mags : dict of str -> array_like, shape (N,)
        Catalogue magnitudes keyed by band (e.g. ``refcat_source.mags``
        unpacked into arrays).
    errs : dict of str -> array_like, shape (N,), optional
        Their errors (mag).
    variant : str
        ``'default'`` or ``'linear'`` (Tonry B V R I).

    Returns
    -------
    mag, err : numpy.ndarray, shape (N,)
        Transformed magnitudes and errors (mag), NaN outside the validity range.
    valid : numpy.ndarray of bool, shape (N,)
        Where the transformation applies.

    Raises
    ------
    ValueError
        Unknown catalogue.
    KeyError
        Unknown target band, or a needed band missing from ``mags``.
    """
    t = get_transformation(catalog, target_band, variant)
    if t.catalog == "2MASS":
        mags = {("K" if k == "Ks" else k): v for k, v in mags.items()}
        if errs is not None:
            errs = {("K" if k == "Ks" else k): v for k, v in errs.items()}
    return t.apply(mags, errs)
