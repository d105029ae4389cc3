"""Veto chains for transient searches (VASCO60-style): step parsing and the spike geometry.

A *veto chain* starts from a set of detections and removes, step by step,
those explained by something known: a flagged or edge-of-image extraction, a
non-stellar shape, a duplicate, or a counterpart in a modern catalogue.  What
is left after each step is a *survivor set*.  The flow follows the VASCO
project's search for vanishing sources on POSS-I plates (Villarroel et al. 2020,
AJ 159, 8; Solano, Villarroel & Rodrigo 2022, MNRAS 515, 1380: SExtractor
detections on the POSS-I red plates, morphological filters on FLAGS,
elongation and FWHM, then rejection of everything with a counterpart in
Gaia, Pan-STARRS and other modern catalogues within a few arcsec).

Each veto is one set-based SQL statement over the current survivors
(temporary table ``_veto_cur``), composed by the stage ``veto``
(:mod:`catdb.stages.veto`, ``rejected_sql``, ``setup_sql``), which runs the chain;
the catalogue, spike and Solar-System vetoes are joins composed by
:mod:`catdb.spatial.sql` (``pair_join``, or ``pm_join`` with proper motions).
The VASCO60 files are read by :mod:`catdb.ingest.vasco60`.

The VASCO criteria (Solano, Villarroel & Rodrigo 2022, MNRAS 515, 1380, as issue #7
lists them; the paper's text was not at hand to check the numbers: SExtractor on the
POSS-I red plates, sources kept with FLAGS = 0, SNR > 30,
2 < FWHM < 7 pixels, ELONGATION < 1.3, SPREAD_MODEL > -0.002, then a 2-sigma clip
of FWHM and elongation, diffraction-spike and bright-star halo removal around
USNO-B1.0 stars, and known asteroids from SkyBoT) map onto the vetoes
``flags, snr, fwhm_px, elongation, spread_model, clip, spikes, sso``; every
threshold is a stage parameter with the paper's value as default.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..errors import CatdbError

#: veto names understood in a ``steps`` list, with what their argument overrides
VETOES = {
    "flags": "flags_max: reject FLAGS > flags_max",
    "edge": "edge_pix: reject within N pixels of the image edge (exposure naxis1/naxis2)",
    "elongation": "elongation_max: reject ELONGATION > max",
    "fwhm": "fwhm_min..fwhm_max: reject FWHM outside [min, max] x the exposure median",
    "duplicates": "dup_radius: reject all but the brightest of detections closer than this on one exposure",
    "refcat": "catalogue name(s) joined by '+', optional @radius_arcsec: reject with a counterpart",
    "snr": "snr_min: reject SNR (FLUX_AUTO/FLUXERR_AUTO) <= snr_min",
    "fwhm_px": "fwhm_px_min..fwhm_px_max: reject FWHM_IMAGE outside [min, max] pixels",
    "spread_model": "spread_model_min: reject SPREAD_MODEL <= min (NULL kept, counted)",
    "clip": "clip_sigma: reject FWHM or ELONGATION beyond median +- clip_sigma x 1.4826 MAD of the "
            "exposure's current survivors (one iteration)",
    "spikes": "catalogue name(s) joined by '+', optional @spike_mag: reject on the RA/Dec (or pixel-axis) "
              "diffraction-spike cross of stars brighter than spike_mag",
    "sso": "sso_radius: reject within this many arcsec of a cached SkyBoT prediction for the exposure",
    "dec": "dec_min..dec_max: reject Dec outside [min, max] deg",
}

#: vetoes whose argument is a range ``lo..hi``
RANGE_VETOES = ("fwhm", "fwhm_px", "dec")
#: vetoes whose argument (or range end) may be negative
SIGNED_VETOES = ("spread_model", "dec")
#: vetoes whose argument names reference catalogues
CATALOG_VETOES = ("refcat", "spikes")
#: astropy.stats.mad_std: MAD x 1 / Phi^-1(3/4), the standard deviation of a normal distribution
MAD_TO_STD = 1.482602218505602


@dataclass
class Step:
    """One veto of a chain.

    Attributes
    ----------
    kind : str
        A key of :data:`VETOES`.
    arg : str or None
        The text after ``:`` (a number, or catalogue names for ``refcat``).
    label : str
        Name written to the ledger (``flags``, ``veto:tycho2``, ...).
    """

    kind: str
    arg: str | None
    label: str


def parse_steps(text: str, default_refcat: str | None = None, default_spikes: str | None = None) -> list[Step]:
    """Parse a chain like ``flags,elongation:1.3,refcat:tycho2,refcat:gaia-dr2@3``.

    Parameters
    ----------
    text : str
        Comma-separated steps ``name[:arg]``; ``refcat`` without argument uses ``default_refcat``.
        Ranges are ``lo..hi`` (``fwhm_px:2..7``, ``dec:-30..90``); ``spikes:NAME[@MAG]``.
    default_refcat : str, optional
        Catalogue name(s) (``+`` or ``,`` separated) for a bare ``refcat`` step.
    default_spikes : str, optional
        Catalogue name(s) for a bare ``spikes`` step (default: ``default_refcat``).

    Returns
    -------
    list of Step

    Raises
    ------
    catdb.errors.CatdbError
        Empty chain, unknown veto name, or a bad argument (names the step).
    """
    steps = []
    for raw in (s.strip() for s in (text or "").split(",")):
        if not raw:
            continue
        kind, _, arg = raw.partition(":")
        kind, arg = kind.strip().lower(), (arg.strip() or None)
        if kind not in VETOES:
            raise CatdbError(f"parameter steps: unknown veto {kind!r} in {raw!r}; known: {', '.join(VETOES)}")
        if kind in CATALOG_VETOES:
            dflt = (default_spikes or default_refcat) if kind == "spikes" else default_refcat
            if arg and arg.startswith("@"):
                arg = (dflt.replace(",", "+") if dflt else "") + arg
            arg = arg or (dflt.replace(",", "+") if dflt else None)
            if not arg or arg.startswith("@"):
                which = "spike_refcat or refcat" if kind == "spikes" else "refcat"
                raise CatdbError(f"parameter steps: {raw!r} needs catalogue names ({kind}:NAME or the {which} "
                                 "parameter)")
            names = arg.split("@")[0]
            if "@" in arg:
                _number(arg.split("@", 1)[1], raw, signed=kind == "spikes")
            label = ("veto:" if kind == "refcat" else "spikes:") + names
        else:
            if arg is not None:
                signed = kind in SIGNED_VETOES
                if kind in RANGE_VETOES:
                    lo, sep, hi = arg.partition("..")
                    if not sep:
                        raise CatdbError(f"parameter steps: {raw!r}: expected a range lo..hi after ':'")
                    if _number(lo, raw, signed) > _number(hi, raw, signed):
                        raise CatdbError(f"parameter steps: {raw!r}: the range is empty (lo > hi)")
                else:
                    _number(arg, raw, signed)
            label = kind
        steps.append(Step(kind, arg, label))
    if not steps:
        raise CatdbError("parameter steps: give at least one veto, e.g. steps=flags,refcat:tycho2")
    return steps


def _number(s, raw, signed=False):
    try:
        v = float(s)
    except (TypeError, ValueError):
        raise CatdbError(f"parameter steps: {raw!r}: expected a number after ':' or '@', got {s!r}") from None
    if not np.isfinite(v) or (v < 0 and not signed):
        raise CatdbError(f"parameter steps: {raw!r}: expected a {'finite' if signed else 'non-negative'} number, "
                         f"got {s!r}")
    return v


def spike_geometry(step: Step, params: dict) -> dict:
    """The cross-shaped spike region of the ``spikes`` veto.

    Around each reference star brighter than ``spike_mag`` (``mag <= spike_mag``) two
    perpendicular spike lines cross at the star, along the RA and the Dec direction.  A
    detection is rejected when its offset from the star on the tangent plane (east
    ``dE = dRA cos(Dec_star)``, north ``dN = dDec``, arcsec) lies within ``spike_width`` of
    one line and within the spike's half-length ``L`` of the star along it::

        (|dN| <= spike_width and |dE| <= L)  or  (|dE| <= spike_width and |dN| <= L)

    (the star's own image, at the crossing, is inside).  ``L = spike_length`` arcsec, or with
    ``spike_scale`` ``L = min(spike_length x 10**(0.2 (spike_mag - mag)), spike_length_max)``:
    the surface brightness along a diffraction spike falls as ``r**-2`` (Fraunhofer
    diffraction by a straight vane of the spider), so the radius where it sinks to the
    detection threshold grows as ``flux**0.5``; a star at ``spike_mag`` has spikes of
    ``spike_length``, one 5 mag brighter ten times longer.

    The spikes of a reflector with a cross-shaped spider lie along the vanes, which on most
    telescopes are aligned with the detector axes, and those with North-up images with
    RA/Dec.  ``spike_axes='radec'`` (default) takes the cross along RA and Dec;
    ``spike_axes='pixel'`` along the exposure's pixel axes: the offsets are rotated by the
    position angle of the +y pixel axis at the image centre (:func:`pixel_axis_angles`, from
    ``exposure.wcs_header``; an exposure without a WCS falls back to RA/Dec and is counted in
    the ledger note).  Offsets are flat-sky, good to ``L**2 tan(Dec) / 2`` (0.04" for
    L = 5', Dec = 60 deg).  Star magnitudes are ``refcat_source.mags[spike_band]``, or the
    brightest magnitude a star has in any band when ``spike_band`` is not given.

    This differs from the published VASCO rule (Solano et al. 2022, as re-implemented in
    github.com/jannefi/vasco, ``vasco/mnras/spikes.py``), which rejects a source when its
    nearest bright USNO-B1.0 / Pan-STARRS star is brighter than a constant or a
    distance-dependent magnitude limit: a circular halo cut, with no spike direction.

    Returns
    -------
    dict
        ``spike_mag`` [mag], ``spike_length``, ``spike_width``, ``spike_length_max``,
        ``search_arcsec`` [arcsec] (pair-search radius covering the longest spike),
        ``spike_scale`` (bool), ``spike_band``, ``spike_axes`` (``radec`` or ``pixel``).
    """
    mag = float(step.arg.split("@", 1)[1]) if step.arg and "@" in step.arg else float(params["spike_mag"])
    length, width = float(params["spike_length"]), float(params["spike_width"])
    scale = bool(params.get("spike_scale"))
    lmax = max(float(params.get("spike_length_max") or length), length) if scale else length
    return {"spike_mag": mag, "spike_length": length, "spike_width": width, "spike_length_max": lmax,
            "spike_scale": scale, "spike_band": params.get("spike_band"),
            "spike_axes": params.get("spike_axes") or "radec",
            "search_arcsec": float(np.hypot(lmax, width)) * (1 + 1e-9)}


def pixel_axis_angles(wcs_headers) -> np.ndarray:
    """Position angle of the +y pixel axis at the reference pixel, east of north (deg), per WCS.

    One WCS per exposure (a loop over exposures, not rows): the angle from the world
    positions of ``CRPIX`` and ``CRPIX + (0, 1)`` (astropy ``position_angle``); NaN for a
    missing or non-celestial WCS.

    Parameters
    ----------
    wcs_headers : sequence of str or None
        ``exposure.wcs_header`` texts (80-character cards separated by newlines).

    Returns
    -------
    numpy.ndarray of float, shape (n,)
    """
    out = np.full(len(wcs_headers), np.nan)
    for k, text in enumerate(wcs_headers):
        if not text:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = WCS(fits.Header.fromstring(text, sep="\n")).celestial
            if not w.has_celestial:
                continue
            x0, y0 = w.wcs.crpix - 1
            a, b = w.pixel_to_world([x0, x0], [y0, y0 + 1])
            out[k] = a.position_angle(b).deg
        except Exception:  # noqa: BLE001, S112 - a broken WCS is no WCS: RA/Dec axes, counted
            continue
    return out
