"""Veto chains for transient searches (VASCO60-style): step parsing, veto SQL, the VASCO60 loader.

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
(temporary table ``_veto_cur``); the catalogue, spike and Solar-System vetoes
are joins composed by :mod:`catdb.spatial.sql` (``pair_join``, or ``pm_join``
with proper motions).  The stage ``veto`` (:mod:`catdb.stages.veto`) runs the
chain.

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

import re
from dataclasses import dataclass

import numpy as np
from psycopg import sql

from ..errors import CatdbError, InputError

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


def rejected_sql(step: Step, params: dict, catalogs: list[str] | None = None) -> tuple[sql.Composable, dict, sql.Composable | None]:
    """SQL selecting the ``detection_id`` of the current survivors that ``step`` rejects.

    The current survivors are the temporary table ``_veto_cur(detection_id, exposure_id, ra, dec,
    epoch)``.  For the flag and shape vetoes a detection whose tested column (or the exposure's
    size) is NULL is *kept* (nothing shows it is bad) and counted as untested.

    Parameters
    ----------
    step : Step
    params : dict
        Stage parameters (``flags_max``, ``edge_pix``, ``elongation_max``, ``fwhm_min``,
        ``fwhm_max``, ``fwhm_column``, ``dup_radius``, ``radius``, ``use_pm``, ``snr_min``,
        ``fwhm_px_min``, ``fwhm_px_max``, ``spread_model_min``, ``clip_sigma``, ``spike_*``,
        ``sso_radius``, ``dec_min``, ``dec_max``).
    catalogs : list of str
        Resolved catalogue names (``refcat`` step; ``spikes`` uses them in :func:`setup_sql`).

    Returns
    -------
    rejected : psycopg.sql.Composable
        ``SELECT detection_id ...``.
    values : dict
        Values bound to its placeholders.
    untested : psycopg.sql.Composable or None
        ``SELECT count(*) ...`` of survivors the step could not test.

    Notes
    -----
    Edge: SExtractor pixel centres are 1-based, the image spans 0.5 .. naxis + 0.5; a
    detection is rejected when ``min(x - 0.5, naxis1 + 0.5 - x, y - 0.5, naxis2 + 0.5 - y)
    < edge_pix`` (``XWIN_IMAGE`` preferred over ``X_IMAGE``).
    Duplicates: of detections closer than ``dup_radius`` on the same exposure the one with the
    largest FLUX_AUTO (then the lowest id) is kept.

    VASCO morphology gates (Solano, Villarroel & Rodrigo 2022, MNRAS 515, 1380; their values are
    the defaults): ``snr`` rejects ``snr <= snr_min`` (30; ``snr`` = FLUX_AUTO / FLUXERR_AUTO);
    ``fwhm_px`` rejects FWHM_IMAGE outside [``fwhm_px_min``, ``fwhm_px_max``] (2, 7 pix, bounds
    kept); ``spread_model`` rejects ``SPREAD_MODEL <= spread_model_min`` (-0.002; NULL, i.e. a
    catalogue without PSF model fitting, is kept and counted untested); ``dec`` rejects Dec outside
    [``dec_min``, ``dec_max``] (deg).

    Clip: per exposure, over the *current survivors* (the set entering the step), the median and
    the normalised MAD (``1.482602218505602 x median |x - median|``, astropy ``mad_std``) of
    FWHM (``fwhm_column``) and of ELONGATION; a detection is rejected when either value lies
    farther than ``clip_sigma`` of them from the median.  One iteration, as
    ``astropy.stats.sigma_clip(x, sigma=clip_sigma, maxiters=1, cenfunc='median',
    stdfunc='mad_std')`` on each column, the two masks OR-ed.  NULLs are kept, counted untested,
    and not used in the statistics.

    Spikes: see :func:`spike_geometry`; needs the temporary table ``_veto_stars`` of
    :func:`setup_sql`.  SSO: pairs with the SkyBoT predictions of the same exposure (temporary
    table ``_veto_sso`` of :func:`setup_sql`) closer than ``sso_radius``; detections on exposures
    without a usable cached cone are kept and counted untested.
    """
    from ..spatial import sql as sp

    kind, arg = step.kind, step.arg
    cur_d = sql.SQL("FROM _veto_cur c JOIN detection d ON d.id = c.detection_id ")
    if kind == "flags":
        v = {"flags_max": int(float(arg)) if arg else int(params["flags_max"])}
        return (sql.SQL("SELECT c.detection_id ") + cur_d + sql.SQL("WHERE d.flags > %(flags_max)s"), v, None)
    if kind == "elongation":
        v = {"elong_max": float(arg) if arg else float(params["elongation_max"])}
        return (sql.SQL("SELECT c.detection_id ") + cur_d + sql.SQL("WHERE d.elongation > %(elong_max)s"), v,
                sql.SQL("SELECT count(*) ") + cur_d + sql.SQL("WHERE d.elongation IS NULL"))
    if kind == "edge":
        v = {"edge": float(arg) if arg else float(params["edge_pix"])}
        x, y = sql.SQL("coalesce(d.xwin, d.x)"), sql.SQL("coalesce(d.ywin, d.y)")
        frm = cur_d + sql.SQL("JOIN exposure e ON e.id = c.exposure_id ")
        q = sql.SQL("SELECT c.detection_id ") + frm + sql.SQL(
            "WHERE least({x} - 0.5, e.naxis1 + 0.5 - {x}, {y} - 0.5, e.naxis2 + 0.5 - {y}) < %(edge)s").format(x=x, y=y)
        unt = sql.SQL("SELECT count(*) ") + frm + sql.SQL(
            "WHERE {x} IS NULL OR {y} IS NULL OR e.naxis1 IS NULL OR e.naxis2 IS NULL").format(x=x, y=y)
        return q, v, unt
    if kind == "fwhm":
        lo, hi = (arg.split("..") if arg else (params["fwhm_min"], params["fwhm_max"]))
        v = {"fwhm_lo": float(lo), "fwhm_hi": float(hi)}
        col = sql.Identifier("d", params.get("fwhm_column") or "fwhm_image")
        col_m = sql.Identifier("m", params.get("fwhm_column") or "fwhm_image")
        med = sql.SQL(
            "WITH med AS (SELECT m.exposure_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY {cm}) AS fwhm_med "
            "FROM detection m WHERE m.exposure_id IN (SELECT DISTINCT exposure_id FROM _veto_cur) "
            "AND m.flags = 0 AND {cm} > 0 GROUP BY m.exposure_id) ").format(cm=col_m)
        frm = cur_d + sql.SQL("LEFT JOIN med ON med.exposure_id = c.exposure_id ")
        q = med + sql.SQL("SELECT c.detection_id ") + frm + sql.SQL(
            "WHERE {c} < %(fwhm_lo)s * med.fwhm_med OR {c} > %(fwhm_hi)s * med.fwhm_med").format(c=col)
        unt = med + sql.SQL("SELECT count(*) ") + frm + sql.SQL("WHERE {c} IS NULL OR med.fwhm_med IS NULL").format(c=col)
        return q, v, unt
    if kind == "duplicates":
        r = float(arg) if arg else float(params["dup_radius"])
        pj = sp.pair_join("_veto_cur", "_veto_cur", r / 3600.0,
                          columns1=[sql.SQL("a.detection_id AS id1"), sql.SQL("a.exposure_id AS e1")],
                          columns2=[sql.SQL("b.detection_id AS id2"), sql.SQL("b.exposure_id AS e2")])
        q = sql.SQL(
            "SELECT DISTINCT p.id1 AS detection_id FROM ({pj}) p "
            "JOIN detection d1 ON d1.id = p.id1 JOIN detection d2 ON d2.id = p.id2 "
            "WHERE p.e1 = p.e2 AND p.id1 <> p.id2 AND "
            "(coalesce(d2.flux_auto, '-infinity'), -d2.id) > (coalesce(d1.flux_auto, '-infinity'), -d1.id)").format(
            pj=pj.sql)
        return q, dict(pj.params), None
    if kind == "refcat":
        r = float(arg.split("@", 1)[1]) if arg and "@" in arg else float(params["radius"])
        if params.get("use_pm"):
            pj = sp.pm_join("refcat_source", "_veto_cur", r / 3600.0, epoch1="epoch", epoch2="epoch",
                            columns1=[sql.SQL("a.catalog AS cat")], columns2=[sql.SQL("b.detection_id AS id1")],
                            max_epoch_delta=float(params.get("max_epoch_delta", 100.0)))
        else:
            pj = sp.pair_join("_veto_cur", "refcat_source", r / 3600.0,
                              columns1=[sql.SQL("a.detection_id AS id1")], columns2=[sql.SQL("b.catalog AS cat")])
        # OFFSET 0 keeps the catalogue filter out of the join: pushed into it, it makes the planner
        # scan refcat_source by catalog and test every pair instead of probing the q3c index
        fence = sql.SQL("") if params.get("use_pm") else sql.SQL(" OFFSET 0")
        q = sql.SQL("SELECT DISTINCT p.id1 AS detection_id FROM ({pj}{fence}) p WHERE p.cat = ANY(%(cats)s)").format(
            pj=pj.sql, fence=fence)
        return q, {**pj.params, "cats": list(catalogs or [])}, None
    if kind == "snr":
        v = {"snr_min": float(arg) if arg else float(params["snr_min"])}
        return (sql.SQL("SELECT c.detection_id ") + cur_d + sql.SQL("WHERE d.snr <= %(snr_min)s"), v,
                sql.SQL("SELECT count(*) ") + cur_d + sql.SQL("WHERE d.snr IS NULL"))
    if kind == "fwhm_px":
        lo, hi = (arg.split("..") if arg else (params["fwhm_px_min"], params["fwhm_px_max"]))
        v = {"fwhm_px_min": float(lo), "fwhm_px_max": float(hi)}
        return (sql.SQL("SELECT c.detection_id ") + cur_d + sql.SQL(
            "WHERE d.fwhm_image < %(fwhm_px_min)s OR d.fwhm_image > %(fwhm_px_max)s"), v,
            sql.SQL("SELECT count(*) ") + cur_d + sql.SQL("WHERE d.fwhm_image IS NULL"))
    if kind == "spread_model":
        v = {"spread_model_min": float(arg) if arg else float(params["spread_model_min"])}
        return (sql.SQL("SELECT c.detection_id ") + cur_d + sql.SQL("WHERE d.spread_model <= %(spread_model_min)s"),
                v, sql.SQL("SELECT count(*) ") + cur_d + sql.SQL("WHERE d.spread_model IS NULL"))
    if kind == "dec":
        lo, hi = (arg.split("..") if arg else (params["dec_min"], params["dec_max"]))
        v = {"dec_min": float(lo), "dec_max": float(hi)}
        return (sql.SQL("SELECT c.detection_id FROM _veto_cur c WHERE c.dec < %(dec_min)s OR c.dec > %(dec_max)s"),
                v, None)
    if kind == "clip":
        v = {"clip_sigma": float(arg) if arg else float(params["clip_sigma"]), "mad_to_std": MAD_TO_STD}
        fw = sql.Identifier("d", params.get("fwhm_column") or "fwhm_image")
        stats = sql.SQL(
            "WITH v AS (SELECT c.detection_id, c.exposure_id, {fw}::double precision AS fw, "
            "d.elongation::double precision AS el " + "FROM _veto_cur c JOIN detection d ON d.id = c.detection_id), "
            "m AS (SELECT exposure_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY fw) AS fw_med, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY el) AS el_med FROM v GROUP BY exposure_id), "
            "s AS (SELECT v.exposure_id, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v.fw - m.fw_med)) * %(mad_to_std)s AS fw_std, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v.el - m.el_med)) * %(mad_to_std)s AS el_std "
            "FROM v JOIN m ON m.exposure_id = v.exposure_id GROUP BY v.exposure_id) ").format(fw=fw)
        frm = sql.SQL("FROM v JOIN m ON m.exposure_id = v.exposure_id JOIN s ON s.exposure_id = v.exposure_id ")
        q = stats + sql.SQL("SELECT v.detection_id ") + frm + sql.SQL(
            "WHERE abs(v.fw - m.fw_med) > %(clip_sigma)s * s.fw_std OR abs(v.el - m.el_med) > %(clip_sigma)s * s.el_std")
        unt = stats + sql.SQL("SELECT count(*) ") + frm + sql.SQL("WHERE v.fw IS NULL OR v.el IS NULL")
        return q, v, unt
    if kind == "spikes":
        geo = spike_geometry(step, params)
        pj = sp.pair_join("_veto_cur", "_veto_stars", geo["search_arcsec"] / 3600.0,
                          columns1=[sql.SQL("a.detection_id AS id1"), sql.SQL("a.exposure_id AS e1"),
                                    sql.SQL("a.ra AS dra"), sql.SQL("a.dec AS ddec")],
                          columns2=[sql.SQL("b.ra AS sra"), sql.SQL("b.dec AS sdec"), sql.SQL("b.length AS len")])
        # offsets of the detection from the star on the tangent plane, arcsec: east (RA, wrapped to
        # +-180 deg, times cos Dec of the star) and north (Dec); with spike_axes=pixel rotated onto
        # the exposure's pixel axes (u along x, v along y; _veto_pa.pa: position angle of +y, east of north)
        off = sql.SQL(
            "SELECT p0.id1, p0.e1, ((p0.dra - p0.sra) - 360 * floor((p0.dra - p0.sra + 180) / 360)) "
            "* cos(radians(p0.sdec)) * 3600 AS de, (p0.ddec - p0.sdec) * 3600 AS dn, p0.len FROM ({pj}) p0").format(
            pj=pj.sql)
        if geo["spike_axes"] == "pixel":
            uv = sql.SQL(
                "SELECT o.id1, abs(o.de * cos(radians(coalesce(a.pa, 0))) - o.dn * sin(radians(coalesce(a.pa, 0)))) "
                "AS u, abs(o.de * sin(radians(coalesce(a.pa, 0))) + o.dn * cos(radians(coalesce(a.pa, 0)))) AS v, "
                "o.len FROM ({off}) o LEFT JOIN _veto_pa a ON a.exposure_id = o.e1").format(off=off)
        else:
            uv = sql.SQL("SELECT o.id1, abs(o.de) AS u, abs(o.dn) AS v, o.len FROM ({off}) o").format(off=off)
        q = sql.SQL(
            "SELECT DISTINCT p.id1 AS detection_id FROM ({uv}) p "
            "WHERE (p.v <= %(spike_width)s AND p.u <= p.len) OR (p.u <= %(spike_width)s AND p.v <= p.len)").format(
            uv=uv)
        return q, {**pj.params, "spike_width": geo["spike_width"]}, None
    if kind == "sso":
        r = float(arg) if arg else float(params["sso_radius"])
        pj = sp.pair_join("_veto_cur", "_veto_sso", r / 3600.0,
                          columns1=[sql.SQL("a.detection_id AS id1"), sql.SQL("a.exposure_id AS e1")],
                          columns2=[sql.SQL("b.exposure_id AS e2")])
        q = sql.SQL("SELECT DISTINCT p.id1 AS detection_id FROM ({pj}) p WHERE p.e1 = p.e2").format(pj=pj.sql)
        unt = sql.SQL("SELECT count(*) FROM _veto_cur c WHERE c.exposure_id NOT IN (SELECT exposure_id FROM _veto_cone)")
        return q, dict(pj.params), unt
    raise CatdbError(f"unknown veto {kind!r}")  # pragma: no cover - parse_steps refuses it


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
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

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


def setup_sql(step: Step, params: dict, catalogs: list[str] | None = None) -> list[tuple[sql.Composable, dict]]:
    """Statements to run before :func:`rejected_sql` of ``step`` (temporary tables, q3c index).

    ``spikes``: ``_veto_stars(ra, dec, mag, length)``, the stars of ``catalogs`` brighter than
    ``spike_mag`` with their spike half-length (arcsec, :func:`spike_geometry`).
    ``sso``: ``_veto_cone(exposure_id, query_id)``, the newest usable cached SkyBoT cone of
    each input exposure (status ``ok`` or ``empty``, epoch within ``sso_max_epoch_diff``
    hours of the exposure's ``mjd_mid``, as the ``skybot`` stage requires), and
    ``_veto_sso(exposure_id, ra, dec)``, its predicted positions moved linearly to
    mid-exposure with the predicted rates (as the ``skybot`` stage does).

    Returns
    -------
    list of (psycopg.sql.Composable, dict)
        Empty for the other vetoes.
    """
    from ..spatial import sql as sp

    if step.kind == "spikes":
        geo = spike_geometry(step, params)
        mag = (sql.SQL("(r.mags ->> %(spike_band)s)::double precision") if geo["spike_band"] else
               sql.SQL("(SELECT min(j.value::double precision) FROM jsonb_each_text(r.mags) j)"))
        length = (sql.SQL("least(%(spike_length)s * power(10, 0.2 * (%(spike_mag)s - s.mag)), %(spike_length_max)s)")
                  if geo["spike_scale"] else sql.SQL("%(spike_length)s::double precision"))
        v = {k: geo[k] for k in ("spike_mag", "spike_length", "spike_length_max", "spike_band")}
        v["cats"] = list(catalogs or [])
        create = sql.SQL(
            "CREATE TEMP TABLE _veto_stars ON COMMIT DROP AS SELECT s.ra, s.dec, s.mag, {length} AS length "
            "FROM (SELECT r.ra, r.dec, {mag} AS mag FROM refcat_source r WHERE r.catalog = ANY(%(cats)s)) s "
            "WHERE s.mag <= %(spike_mag)s").format(length=length, mag=mag)
        idx = sp.ipix_index("_veto_stars", name="_veto_stars_q3c")
        return [(sql.SQL("DROP TABLE IF EXISTS _veto_stars"), {}), (create, v), (idx.sql, dict(idx.params)),
                (sql.SQL("ANALYZE _veto_stars"), {})]
    if step.kind == "sso":
        cone = sql.SQL(
            "CREATE TEMP TABLE _veto_cone ON COMMIT DROP AS "
            "SELECT DISTINCT ON (q.exposure_id) q.exposure_id, q.id AS query_id "
            "FROM skybot_query q JOIN exposure e ON e.id = q.exposure_id "
            "WHERE q.exposure_id IN (SELECT DISTINCT exposure_id FROM _veto_cur) AND q.status IN ('ok', 'empty') "
            "AND abs(q.mjd_epoch - e.mjd_mid) * 24 <= %(dt)s ORDER BY q.exposure_id, q.id DESC")
        pred = sql.SQL(
            "CREATE TEMP TABLE _veto_sso ON COMMIT DROP AS SELECT o.exposure_id, "
            "mod((o.ra + coalesce(o.rate_ra, 0) * (e.mjd_mid - o.mjd_epoch) * 24 / 3600 "
            "/ cos(radians(o.dec)))::numeric + 360, 360)::double precision AS ra, "
            "o.dec + coalesce(o.rate_dec, 0) * (e.mjd_mid - o.mjd_epoch) * 24 / 3600 AS dec "
            "FROM skybot_object o JOIN _veto_cone c ON c.query_id = o.query_id JOIN exposure e ON e.id = o.exposure_id")
        idx = sp.ipix_index("_veto_sso", name="_veto_sso_q3c")
        return [(sql.SQL("DROP TABLE IF EXISTS _veto_cone, _veto_sso"), {}),
                (cone, {"dt": float(params.get("sso_max_epoch_diff", 1.0))}), (pred, {}),
                (idx.sql, dict(idx.params)), (sql.SQL("ANALYZE _veto_sso"), {})]
    return []


def resolve_catalogs(conn, names: str) -> list[str]:
    """Catalogue names as stored in ``refcat_source`` (case-insensitive), for ``a+b`` text.

    Raises
    ------
    catdb.errors.CatdbError
        A name with no stars in ``refcat_source`` (lists the catalogues that are there).
    """
    known = [r[0] for r in conn.execute(
        "SELECT DISTINCT params->>'catalog' FROM stage_run WHERE stage = 'ingest-refcat' AND status = 'ok' "
        "AND params->>'catalog' IS NOT NULL")]
    out = []
    for n in (x.strip() for x in names.split("@")[0].split("+")):
        hit = [k for k in known if k.lower() == n.lower()]
        cand = hit[0] if hit else n
        if conn.execute("SELECT EXISTS (SELECT 1 FROM refcat_source WHERE catalog = %s)", (cand,)).fetchone()[0]:
            out.append(cand)
            continue
        raise CatdbError(f"refcat {n!r}: no stars of that catalogue in refcat_source "
                         f"(ingested: {', '.join(sorted(known)) or 'none'}; catdb ingest refcat FILE --catalog NAME)")
    return out


# --------------------------------------------------------------------------- VASCO60 data
def parse_overflow_isot(values, *, path=None, column="obs_date") -> np.ndarray:
    """MJD (UTC) of ``YYYY-MM-DDTHH:MM[:SS[.f]]`` strings whose minutes/seconds may overflow.

    The VASCO60 survivor list has times such as ``1953-01-10T04:65:00`` (187 of 440 rows):
    minutes of 60 or more, which ISO 8601 and astropy refuse.  They are normalised by carrying
    the overflow (``04:65`` = ``05:05``), i.e. MJD = date + (h * 3600 + m * 60 + s) / 86400.

    Parameters
    ----------
    values : array_like of str, shape (n,)

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Modified Julian Date (d).

    Raises
    ------
    catdb.errors.InputError
        A value that is not of that form (names the row, 1-based, and the value).
    """
    s = np.asarray(values).astype("U32")
    n = len(s)
    if n == 0:
        return np.empty(0)
    chars = s.view("U1").reshape(n, 32)  # fixed-width characters, "" past the end

    def field(i, j):
        return np.ascontiguousarray(chars[:, i:j]).view(f"U{j - i}").ravel()

    lengths = np.char.str_len(s)
    digit = np.char.isdigit(chars[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]]).all(axis=1)
    ok = ((lengths >= 16) & digit & (chars[:, 4] == "-") & (chars[:, 7] == "-") & (chars[:, 10] == "T")
          & (chars[:, 13] == ":") & ((lengths == 16) | ((lengths > 17) & (chars[:, 16] == ":"))))
    sec_txt = np.where(lengths > 16, field(17, 32), "0")
    sec_num = np.char.isdecimal(np.char.replace(sec_txt, ".", "", count=1)) & (np.char.str_len(sec_txt) > 0)
    ok &= sec_num
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise InputError(f"expected a time like 1953-01-10T04:65:00, got {str(s[bad])!r}", path=path,
                         row=bad + 1, keyword=column)
    date = field(0, 10).astype("datetime64[D]")
    hours = field(11, 13).astype(int)
    minutes = field(14, 16).astype(int)
    sec = sec_txt.astype(float)
    mjd0 = (date - np.datetime64("1858-11-17")).astype(np.int64).astype(float)
    return mjd0 + (hours * 3600.0 + minutes * 60.0 + sec) / 86400.0


def mjd_to_isot(mjd) -> np.ndarray:
    """ISO-8601 strings (``YYYY-MM-DDTHH:MM:SS``, UTC) of MJDs (for the normalised obs dates)."""
    mjd = np.asarray(mjd, dtype=float)
    t = np.datetime64("1858-11-17T00:00:00") + np.round(mjd * 86400.0).astype("timedelta64[s]")
    return np.datetime_as_string(t, unit="s")


_TILE = re.compile(r"tile_RA(?P<ra>[0-9.]+)_DEC(?P<sgn>[pm])(?P<dec>[0-9.]+)")


def load_vasco60(conn, detections_csv, survivors_csv=None, *, replace: bool = False) -> dict:
    """Load the VASCO60 detections as exposures (one per POSS-I tile) and detections.

    Each tile (``tile_RA85.001_DECp43.060``) becomes one exposure (``path`` =
    ``vasco60:<plate_id>/<tile_id>``, ``instrument`` POSS-I, centre from the tile name, radius
    to its farthest detection); each row a detection (``number`` = ``object_id``, ``extra`` =
    ``{src_id, tile_id, plate_id}``, FLAGS 0: the file holds positions only).  Plate epochs come
    from ``survivors_csv`` (``obs_date`` per plate, minute overflow normalised by
    :func:`parse_overflow_isot`); tiles of plates without a survivor have no ``mjd_mid``.

    Parameters
    ----------
    conn : psycopg.Connection
    detections_csv : path
        ``source_extractor_final_filtered.csv`` (``src_id, tile_id, object_id, ra, dec, plate_id``).
    survivors_csv : path, optional
        ``survivors.csv`` (``src_id, tile_id, ra, dec, plate_id, obs_date, run_id``).
    replace : bool
        Delete exposures loaded earlier from VASCO60 files (else loading twice is an error).

    Returns
    -------
    dict
        ``run_id``, ``n_exposures``, ``n_detections``, ``n_dated_exposures``.

    Raises
    ------
    catdb.errors.InputError
        Missing column, non-finite or out-of-range position, bad obs_date (file, row, column named),
        or already loaded without ``replace``.
    """

    from ..db.copy import copy_table
    from ..db.provenance import fail_run, finish_run, start_run

    det = _read_csv(detections_csv, ("src_id", "tile_id", "object_id", "ra", "dec", "plate_id"))
    ra, dec = np.asarray(det["ra"], float), np.asarray(det["dec"], float)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (np.abs(dec) <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"ra/dec must be finite degrees (0 <= ra < 360, |dec| <= 90), got {ra[i]}, {dec[i]}",
                         path=detections_csv, row=i + 2, keyword="ra/dec")
    tiles, inv = np.unique(np.asarray(det["tile_id"]).astype(str), return_inverse=True)
    plates = np.empty(len(tiles), dtype=object)
    plates[inv] = np.asarray(det["plate_id"]).astype(str)
    centre = np.full((len(tiles), 2), np.nan)
    for k, t in enumerate(tiles):  # one regex per tile (exposure), not per row
        m = _TILE.fullmatch(t)
        if m:
            centre[k] = float(m["ra"]), (1 if m["sgn"] == "p" else -1) * float(m["dec"])
    nocentre = ~np.isfinite(centre[:, 0])  # fall back on the mean position
    if nocentre.any():
        for j, a in ((0, ra), (1, dec)):
            s = np.bincount(inv, a, minlength=len(tiles)) / np.bincount(inv, minlength=len(tiles))
            centre[nocentre, j] = s[nocentre]
    r1, d1, r2, d2 = (np.radians(v) for v in (ra, dec, centre[inv, 0], centre[inv, 1]))
    hav = np.sin((d1 - d2) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r1 - r2) / 2) ** 2
    dist = np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1))))  # great-circle (haversine)
    radius = np.zeros(len(tiles))
    np.maximum.at(radius, inv, dist)
    mjd = np.full(len(tiles), np.nan)
    n_dated = 0
    if survivors_csv is not None:
        sv = _read_csv(survivors_csv, ("plate_id", "obs_date"))
        smjd = parse_overflow_isot(np.asarray(sv["obs_date"]).astype(str), path=survivors_csv)
        sp, sinv = np.unique(np.asarray(sv["plate_id"]).astype(str), return_inverse=True)
        pm = np.bincount(sinv, smjd) / np.bincount(sinv)  # mean epoch per plate
        pos = np.searchsorted(sp, plates.astype(str))
        hit = (pos < len(sp)) & (sp[np.minimum(pos, len(sp) - 1)] == plates.astype(str))
        mjd[hit] = pm[pos[hit]]
        n_dated = int(hit.sum())
    paths = np.char.add(np.char.add("vasco60:", plates.astype(str)), np.char.add("/", tiles))
    run_id = start_run(conn, "ingest-vasco60", {"detections": str(detections_csv),
                                                "survivors": None if survivors_csv is None else str(survivors_csv)})
    try:
        with conn.transaction():
            old = conn.execute("SELECT count(*) FROM exposure WHERE path LIKE 'vasco60:%%'").fetchone()[0]
            if old and not replace:
                raise InputError(f"{old} VASCO60 exposures are already loaded (use replace=True)",
                                 path=detections_csv)
            conn.execute("DELETE FROM exposure WHERE path LIKE 'vasco60:%%'")
            date_obs = np.where(np.isfinite(mjd), mjd_to_isot(np.nan_to_num(mjd)), None).astype(object)
            copy_table(conn, "exposure", {
                "path": paths, "object": tiles, "ra_center": centre[:, 0] % 360.0, "dec_center": centre[:, 1],
                "radius": radius, "mjd_mid": mjd, "date_obs": date_obs,
            }, constants={"hdu": 0, "instrument": "POSS-I", "telescope": "Palomar 48-inch Oschin Schmidt",
                          "image_type": "science", "stage_run_id": run_id})
            got = conn.execute("SELECT path, id FROM exposure WHERE stage_run_id = %s", (run_id,)).fetchall()
            gp = np.array([g[0] for g in got])
            gi = np.array([g[1] for g in got], dtype=np.int64)
            order = np.argsort(gp)
            exp_id = gi[order][np.searchsorted(gp[order], paths)]
            n = copy_table(conn, "detection", {
                "exposure_id": exp_id[inv], "number": np.asarray(det["object_id"], dtype=np.int64),
                "ra": ra, "dec": dec,
            }, constants={"flags": 0, "stage_run_id": run_id}, json_column="extra", json_values={
                "src_id": np.asarray(det["src_id"]).astype(str), "tile_id": np.asarray(det["tile_id"]).astype(str),
                "plate_id": np.asarray(det["plate_id"]).astype(str)})
            counts = {"exposure": len(tiles), "detection": n, "dated_exposures": n_dated}
            finish_run(conn, run_id, counts=counts)
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return {"run_id": run_id, "n_exposures": len(tiles), "n_detections": n, "n_dated_exposures": n_dated}


def _read_csv(path, required):
    from astropy.table import Table

    try:
        t = Table.read(str(path), format="ascii.csv")
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except Exception as e:  # noqa: BLE001 - astropy raises many kinds
        raise InputError(f"cannot read as CSV: {e}", path=path) from None
    missing = [c for c in required if c not in t.colnames]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; expected {', '.join(required)}",
                         path=path, keyword=missing[0])
    return t
