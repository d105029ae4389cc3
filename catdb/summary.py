"""The end-of-run summary ``catdb run`` prints when the pipeline has a ``[summary]`` section.

``[summary]`` may list known movers to check the candidates against::

    [[summary.known_mover]]
    name = "(5945) Roachapproach"
    jd = [2458568.60418, 2458568.84034]
    ra = [124.62662, 124.63359]
    dec = [25.34294, 25.32967]
"""
from __future__ import annotations

import numpy as np


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


def match_known(tracks, known: list[dict], tol_arcsec: float = 3.0) -> dict:
    """For each known mover, the candidate track whose predicted positions match at every epoch."""
    from astropy.coordinates import SkyCoord

    out = {}
    for k in known:
        mjd = np.asarray(k["jd"], dtype=float) - 2400000.5
        best = None
        for t in tracks:
            ra, dec = predict(t, mjd)
            sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(k["ra"], k["dec"], unit="deg")).arcsec
            if np.all(sep < tol_arcsec) and (best is None or sep.max() < best[1]):
                best = (t[0], float(sep.max()))
        out[k["name"]] = best
    return out


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
    zp = np.array([r[0] for r in conn.execute(
        "SELECT zp FROM zeropoint WHERE ok AND zp IS NOT NULL").fetchall()], dtype=float)
    tracks = _track_positions(conn)
    known = match_known(tracks, conf.get("known_mover", []))
    targets = ephemeris_targets(conn)
    # the target's light curve: the track the ephemeris stage linked, else the latest period
    per = conn.execute("SELECT track_id, period, period_err, rotation_period, n_points, fap FROM lightcurve_period "
                       "ORDER BY track_id IS NOT DISTINCT FROM %s DESC, id DESC LIMIT 1",
                       (targets[0][1] if targets else None,)).fetchone()
    echo("")
    echo("=" * 72)
    echo(f"catdb {pipeline.name}: done in {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    echo(f"  exposures (science) {n_exp}   detections {n_det}   static objects {n_obj}")
    if zp.size:
        echo(f"  zeropoints: {zp.size} exposures, scatter (std) {np.std(zp):.3f} mag, range {np.ptp(zp):.3f} mag")
    echo(f"  moving-object candidates: {len(tracks)}")
    hits = {v[0]: k for k, v in known.items() if v}
    for t in tracks:
        tag = f"  <- {hits[t[0]]}" if t[0] in hits else ""
        echo(f"    track {t[0]:>4}: {t[1]:>2} detections, rate {t[2]:6.2f}\"/h "
             f"(RA cos(dec) {t[3]:+6.2f}, Dec {t[4]:+6.2f}), mag {t[8] if t[8] is not None else float('nan'):6.2f}"
             f"{tag}")
    for name, v in known.items():
        echo(f"  known mover {name}: " + (f"FOUND as track {v[0]} (max offset {v[1]:.2f}\")" if v else "NOT found"))
    for tgt, tid, name, mode, sep, spread, n in targets:
        fig = f"median offset {sep:.2f}\"" if sep is not None else f"motion only, offset spread {spread:.2f}\""
        echo(f"  target {name or tgt} (JPL Horizons ephemeris): track {tid}, {n} exposures, {fig}")
    if per:
        echo(f"  target light curve (track {per[0]}, {per[4]} points): period {per[1]:.2f} +- {per[2]:.2f} h, "
             f"rotation period (double-peaked) {per[3]:.2f} h, FAP {per[5]:.2g}")
    coadd = _coadd_summary(conn)
    if coadd:
        echo(coadd)
    outs = sorted(p for p in pipeline.outdir.rglob("*") if p.is_file() and p.suffix in
                  (".html", ".vot", ".xml", ".parquet", ".csv", ".psv", ".txt", ".mpc", ".fits"))
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
    from .export.diagnostics import latest_coadd

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
