"""The end-of-run summary ``catdb run`` prints when the pipeline has a ``[summary]`` section.

``[summary]`` may list known movers to check the candidates against, on the sky (positions at
two or more epochs; a track is FOUND when its linear motion passes within 3" of every one)::

    [[summary.known_mover]]
    name = "(5945) Roachapproach"
    jd = [2458568.60418, 2458568.84034]
    ra = [124.62662, 124.63359]
    dec = [25.34294, 25.32967]

or, when the night's absolute frame is unknown (frames only registered to each other), in the
pixels of one exposure::

    [[summary.known_mover]]
    name = "(2713) Luxembourg"
    exposure = "*Light.Open.00000015.fit"   # glob on the exposure's file name (or full path): one exposure
    x = 441.7                             # FITS/SExtractor pixel position (1-based) on that exposure
    y = 439.4
    rate_px_h = 9.2                       # motion relative to the stars, pixels per hour
    direction_deg = 180.0                 # its direction in that exposure's pixel axes, from +x towards +y
    tol_px = 5.0                          # optional: position tolerance [px] (default 5)
    rate_tol_px_h = 1.5                   # optional: rate tolerance [px/h] (default 1.5)
    direction_tol_deg = 20.0              # optional: direction tolerance [deg] (default 20)

The track's linear motion is taken to that exposure's mid-time and through its stored WCS
(``exposure.wcs_header``, whatever its ``wcs_status``: only the pixel frame matters) back to
pixels; the offset, rate and direction are compared there.
"""
from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord

from .errors import InputError
from .export.diagnostics import latest_coadd
from .ingest.headers import header_from_cards
from .wcsutil import wcs_from_header


def _track_positions(conn):
    """Candidate tracks: id, rate, rates, ra/dec at mjd_ref; linear motion model."""
    return conn.execute(
        "SELECT id, n_detections, rate, rate_ra, rate_dec, ra, dec, mjd_ref, mean_mag, designation "
        "FROM track WHERE status = 'candidate' ORDER BY mean_mag NULLS LAST, id").fetchall()


def predict(track, mjd):
    """(ra, dec) of a linear track at MJD ``mjd`` (rates in arcsec/h, rate_ra includes cos dec)."""
    _, _, _, rra, rdec, ra0, dec0, mref, _, _ = track
    dt_h = (np.asarray(mjd) - mref) * 24.0
    dec = dec0 + rdec * dt_h / 3600.0
    ra = ra0 + rra * dt_h / 3600.0 / np.cos(np.deg2rad(dec0))
    return ra, dec


def match_known(tracks, known: list[dict], tol_arcsec: float = 3.0, conn=None) -> dict:
    """For each known mover, the candidate track that matches it (see the module docstring).

    Returns
    -------
    dict
        ``name -> (track_id, offset, text)`` or ``name -> None`` (not found); for a mover given on
        the sky ``offset`` is the largest separation [arcsec], for one given in pixels the offset on
        the exposure [px]; pixel-form entries that cannot be checked (``conn`` missing, no or several
        exposures matching, no stored WCS) map to ``(None, None, why)``.
    """
    out = {}
    for k in known:
        if "x" in k:
            out[k["name"]] = match_known_pixels(conn, tracks, k)
            continue
        mjd = np.asarray(k["jd"], dtype=float) - 2400000.5
        best = None
        for t in tracks:
            ra, dec = predict(t, mjd)
            sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(k["ra"], k["dec"], unit="deg")).arcsec
            if np.all(sep < tol_arcsec) and (best is None or sep.max() < best[1]):
                best = (t[0], float(sep.max()), f"max offset {sep.max():.2f}\"")
        out[k["name"]] = best
    return out


_DIRECTIONS = {"+x": 0.0, "x": 0.0, "+y": 90.0, "y": 90.0, "-x": 180.0, "-y": 270.0}


def _glob_to_like(pattern: str) -> str:
    """A shell glob (``*``, ``?``) as an SQL LIKE pattern (``%``, ``_`` and the escape character escaped)."""
    out = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return out.replace("*", "%").replace("?", "_")


def track_pixel_motion(track, wcs, mjd: float):
    """A linear track in one exposure's pixel frame: position at ``mjd``, rate and direction.

    Parameters
    ----------
    track : tuple
        A row of :func:`_track_positions`.
    wcs : astropy.wcs.WCS
        The exposure's WCS (FITS 1-based pixel convention).
    mjd : float
        The exposure's mid-time [MJD].

    Returns
    -------
    x, y : float
        Predicted pixel position (1-based) [px].
    rate : float
        Motion [px/h] (from the positions 0.5 h either side of ``mjd``).
    direction : float
        Direction of motion in the pixel axes, degrees from +x towards +y, in [0, 360).
    """
    ra, dec = predict(track, np.array([mjd, mjd - 0.5 / 24.0, mjd + 0.5 / 24.0]))
    px, py = wcs.all_world2pix(ra, dec, 1)
    dx, dy = px[2] - px[1], py[2] - py[1]
    return float(px[0]), float(py[0]), float(np.hypot(dx, dy)), float(np.degrees(np.arctan2(dy, dx)) % 360.0)


def match_known_pixels(conn, tracks, k: dict):
    """A known mover given in one exposure's pixels (module docstring): the best matching track.

    Returns
    -------
    tuple or None
        ``(track_id, offset [px], text)`` of the matching track with the smallest offset, None when
        no track matches, ``(None, None, why)`` when it cannot be checked.

    Raises
    ------
    catdb.errors.InputError
        A ``[[summary.known_mover]]`` without ``exposure``, ``y`` or ``rate_px_h``, or with an
        unknown direction.
    """
    missing = [key for key in ("exposure", "y", "rate_px_h") if key not in k]
    if missing:
        raise InputError(f"[[summary.known_mover]] {k.get('name')!r}: a mover given in pixels needs "
                         f"exposure, x, y, rate_px_h (and direction_deg); missing {', '.join(missing)}")
    direction = k.get("direction_deg", k.get("direction"))
    if isinstance(direction, str):
        if direction.strip() not in _DIRECTIONS:
            raise InputError(f"[[summary.known_mover]] {k.get('name')!r}: direction {direction!r}: expected "
                             f"degrees from +x towards +y, or one of {', '.join(_DIRECTIONS)}")
        direction = _DIRECTIONS[direction.strip()]
    if conn is None:
        return (None, None, "not checked: no database connection")
    pattern = k["exposure"]
    like = _glob_to_like(pattern)
    hits = conn.execute("SELECT id, path, mjd_mid, wcs_header, wcs_status FROM exposure WHERE image_type = 'science' "
                        "AND (path LIKE %s OR regexp_replace(path, '^.*/', '') LIKE %s) ORDER BY id",
                        (like, like)).fetchall()
    if len(hits) != 1:
        return (None, None, f"not checked: exposure {pattern!r} matches {len(hits)} science exposures (1 needed)")
    eid, path, mjd, wcs_text, status = hits[0]
    if not wcs_text or mjd is None:
        return (None, None, f"not checked: exposure {eid} ({path}) has no stored WCS (wcs_status {status!r})")
    wcs = wcs_from_header(header_from_cards(wcs_text), path=path)
    tol = float(k.get("tol_px", 5.0))
    rtol = float(k.get("rate_tol_px_h", 1.5))
    dtol = float(k.get("direction_tol_deg", 20.0))
    best = None
    for t in tracks:  # loop over the (few) candidate tracks
        x, y, rate, dirn = track_pixel_motion(t, wcs, mjd)
        off = float(np.hypot(x - k["x"], y - k["y"]))
        ddir = abs((dirn - direction + 180.0) % 360.0 - 180.0) if direction is not None else 0.0
        if off <= tol and abs(rate - k["rate_px_h"]) <= rtol and ddir <= dtol and (best is None or off < best[1]):
            text = (f"offset {off:.2f} px on exposure {eid}, rate {rate:.2f} px/h (given {k['rate_px_h']:g}), "
                    f"direction {dirn:.0f} deg" + (f" (given {direction:g})" if direction is not None else ""))
            best = (t[0], off, text)
    return best


def ephemeris_targets(conn) -> list[tuple]:
    """Named targets linked to a candidate track by the ``ephemeris`` stage, latest first.

    Returns
    -------
    list of tuple
        ``(target, track_id, target_name, mode, sep_median ["], offset_spread ["], n_exposures)``.
    """
    return conn.execute(
        "SELECT et.target, et.track_id, et.target_name, et.mode, et.sep_median, et.offset_spread, et.n_exposures "
        "FROM ephemeris_target et JOIN track t ON t.id = et.track_id WHERE t.status = 'candidate' "
        "ORDER BY et.stage_run_id DESC, et.id DESC").fetchall()


def print_summary(conn, pipeline, results, elapsed: float, echo=print) -> dict:
    """Print the summary (counts, zeropoints, candidates vs known movers, period, outputs, next queries)."""
    conf = pipeline.extra.get("summary", {})
    n_exp, n_det, n_obj = conn.execute(
        "SELECT (SELECT count(*) FROM exposure WHERE image_type = 'science'), (SELECT count(*) FROM detection), "
        "(SELECT count(*) FROM object WHERE kind NOT IN ('moving', 'coadd'))").fetchone()
    zp_rows = conn.execute("SELECT zp, method FROM zeropoint WHERE ok AND zp IS NOT NULL").fetchall()
    zp = np.array([r[0] for r in zp_rows], dtype=float)
    methods = sorted({r[1] for r in zp_rows})
    tracks = _track_positions(conn)
    known = match_known(tracks, conf.get("known_mover", []), conn=conn)
    targets = ephemeris_targets(conn)
    # the target's light curve: the track the ephemeris stage linked, else the first known mover found, else
    # (no target identified) the candidate light curve with the most points -- said as such
    per_cols = "SELECT track_id, period, period_err, rotation_period, n_points, fap FROM lightcurve_period "
    sql_per = per_cols + "WHERE track_id = %s ORDER BY id DESC LIMIT 1"
    per, per_why = None, None
    linked = targets[0][1] if targets else None
    found = next(((name, v[0]) for name, v in known.items() if v and v[0] is not None), None)
    if linked is not None:
        per, per_why = conn.execute(sql_per, (linked,)).fetchone(), "ephemeris target"
    if per is None and found is not None:
        per, per_why = conn.execute(sql_per, (found[1],)).fetchone(), f"known mover {found[0]}"
    if per is None:
        per = conn.execute(per_cols + "ORDER BY n_points DESC, fap ASC NULLS LAST, id DESC LIMIT 1").fetchone()
        per_why = "no target identified: the candidate light curve with the most points"
    echo("")
    echo("=" * 72)
    echo(f"catdb {pipeline.name}: done in {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    echo(f"  exposures (science) {n_exp}   detections {n_det}   static objects {n_obj}")
    scale = ("; magnitudes on a relative scale (zp_ref), not absolute"
             if methods and set(methods) <= {"relative", "ensemble"} else "")
    if zp.size:
        echo(f"  zeropoints ({', '.join(methods)}): {zp.size} exposures, scatter (std) {np.std(zp):.3f} mag, "
             f"range {np.ptp(zp):.3f} mag{scale}")
    echo(f"  moving-object candidates: {len(tracks)}")
    hits = {v[0]: k for k, v in known.items() if v and v[0] is not None}
    for t in tracks:
        tag = f"  <- {hits[t[0]]}" if t[0] in hits else ""
        echo(f"    track {t[0]:>4}: {t[1]:>2} detections, rate {t[2]:6.2f}\"/h "
             f"(RA cos(dec) {t[3]:+6.2f}, Dec {t[4]:+6.2f}), mag {t[8] if t[8] is not None else float('nan'):6.2f}"
             f"{tag}")
    for name, v in known.items():
        if v and v[0] is None:
            echo(f"  known mover {name}: {v[2]}")
        else:
            echo(f"  known mover {name}: " + (f"FOUND as track {v[0]} ({v[2]})" if v else "NOT found"))
    for tgt, tid, name, _mode, sep, spread, n in targets:
        fig = f"median offset {sep:.2f}\"" if sep is not None else f"motion only, offset spread {spread:.2f}\""
        echo(f"  target {name or tgt} (JPL Horizons ephemeris): track {tid}, {n} exposures, {fig}")
    if per:
        echo(f"  target light curve (track {per[0]}, {per[4]} points; {per_why}): "
             f"period {per[1]:.2f} +- {per[2]:.2f} h, "
             f"rotation period (double-peaked) {per[3]:.2f} h, FAP {per[5]:.2g}")
        span = conn.execute("SELECT (mjd_last - mjd_first) * 24 FROM track WHERE id = %s", (per[0],)).fetchone()
        if span and span[0] is not None and per[1] > span[0]:
            # a light-curve period longer than the time covered is not measured (less than one cycle seen)
            echo(f"    NOT constrained: the light curve covers {span[0]:.2f} h, less than one {per[1]:.2f} h period")
    coadd = _coadd_summary(conn)
    if coadd:
        echo(coadd)
    outs = sorted(p for p in pipeline.outdir.rglob("*") if p.is_file() and p.suffix in
                  (".html", ".vot", ".xml", ".parquet", ".csv", ".psv", ".txt", ".mpc", ".fits", ".alcdef"))
    if outs:
        echo(f"  outputs in {pipeline.outdir}:")
        for p in outs[:12]:
            echo(f"    {p.relative_to(pipeline.outdir)}")
    echo("  try next:")
    for q in conf.get("queries", [
            "SELECT id, mjd_mid, fwhm, bkg_median, quality_flags FROM exposure WHERE image_type = 'science' "
            "ORDER BY mjd_mid",
            "SELECT t.id, t.rate, e.mjd_mid, d.ra, d.dec, d.mag_auto + z.zp AS mag FROM track t "
            "JOIN track_detection td ON td.track_id = t.id JOIN detection d ON d.id = td.detection_id "
            "JOIN exposure e ON e.id = d.exposure_id LEFT JOIN zeropoint z ON z.exposure_id = e.id "
            "WHERE t.status = 'candidate' ORDER BY t.id, e.mjd_mid",
            "SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, 124.627, 25.337, 30/3600.0)"]):
        echo(f"    catdb query \"{q}\"")
    echo("=" * 72)
    return {"known": known, "n_tracks": len(tracks), "ephemeris_targets": targets}


def _coadd_summary(conn) -> str | None:
    """One line on the latest coadd: inputs, coadd objects, and how flat their forced light curves are."""
    co = latest_coadd(conn)
    if co is None:
        return None
    text = f"  coadd: {co['n_inputs']} frames stacked, {co['n_objects']} coadd objects ({co['path']})"
    st = co["stats"]
    if st is not None:
        text += (f"\n  forced photometry of {co['n_forced']} coadd objects on the single frames: {len(st)} light "
                 f"curves, median RMS {np.median(st['rms']):.3f} mag for a median expected error "
                 f"{np.median(st['median_err']):.3f} mag")
    return text
