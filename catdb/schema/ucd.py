"""UCD1+ words for catdb's public tables and views.

A UCD (Unified Content Descriptor) says what a column *is* in the IVOA's
controlled vocabulary, so a VO client can find the position, the time or the
magnitude of a table without knowing catdb's column names: TOPCAT plots
``pos.eq.ra;meta.main`` against ``pos.eq.dec;meta.main`` by itself.  The TAP
service (``catdb serve``) puts these in ``TAP_SCHEMA.columns`` and on the FIELDs of
its VOTables; an export can use :func:`column_ucd` the same way.

Source: IVOA "The UCD1+ controlled vocabulary", version 1.5 (2023-12-18), and
"An IVOA Standard for Unified Content Descriptors" 1.1 (2005) for the syntax
(primary word first, secondary words after ``;``); every word here passes
``astropy.io.votable.ucd.check_ucd(..., check_controlled_vocabulary=True)``
(tests/test_tap.py checks that).

A column with no fitting word has no UCD (``None``): a vague word would only
mislead a client.
"""
from __future__ import annotations

import re

MAIN_RA = "pos.eq.ra;meta.main"
MAIN_DEC = "pos.eq.dec;meta.main"
MAIN_ID = "meta.id;meta.main"
FOREIGN_ID = "meta.id.cross"

#: UCDs by column name, for any table (the explicit table entries below win)
BY_NAME = {
    "id": MAIN_ID,
    "ra": MAIN_RA, "dec": MAIN_DEC,
    "ra_err": "stat.error;pos.eq.ra", "dec_err": "stat.error;pos.eq.dec",
    "mjd_mid": "time.epoch", "mjd_first": "time.start", "mjd_last": "time.end", "mjd_ref": "time.epoch",
    "epoch": "time.epoch",
    "exptime": "time.duration;obs.exposure",
    "airmass": "obs.airmass",
    "filter": "meta.id;instr.filter", "band": "instr.bandpass", "zp_band": "instr.bandpass",
    "x": "pos.cartesian.x;instr.det", "y": "pos.cartesian.y;instr.det",
    "xwin": "pos.cartesian.x;instr.det", "ywin": "pos.cartesian.y;instr.det",
    "flags": "meta.code.qual", "imaflags": "meta.code.qual", "quality_flags": "meta.code.qual",
    "pmra": "pos.pm;pos.eq.ra", "pmdec": "pos.pm;pos.eq.dec",
    "pmra_err": "stat.error;pos.pm;pos.eq.ra", "pmdec_err": "stat.error;pos.pm;pos.eq.dec",
    "parallax": "pos.parallax",
    "snr": "stat.snr",
    "class_star": "src.class.starGalaxy",
    "elongation": "phys.size.axisRatio", "ellipticity": "src.ellipticity",
    "a_image": "phys.angSize.smajAxis;instr.det", "b_image": "phys.angSize.sminAxis;instr.det",
    "a_world": "phys.angSize.smajAxis", "b_world": "phys.angSize.sminAxis",
    "theta_image": "pos.posAng;instr.det", "theta_world": "pos.posAng", "pa": "pos.posAng",
    "fwhm_image": "phys.angSize;instr.det.psf", "flux_radius": "phys.size.radius;instr.det",
    "flux_max": "phot.flux;stat.max",
    "background": "instr.background", "threshold": "instr.sensitivity",
    "spread_model": "src.morph.param", "spreaderr_model": "stat.error;src.morph.param",
    "number": "meta.record",
    "zp": "phot.mag;arith.zp", "zp_err": "stat.error;phot.mag;arith.zp", "zp_method": "meta.code",
    "zeropoint_id": FOREIGN_ID,
    "mag_cal": "phot.mag", "magerr_cal": "stat.error;phot.mag",
    "mag": "phot.mag", "mag_err": "stat.error;phot.mag",
    "flux": "phot.flux", "flux_err": "stat.error;phot.flux",
    "mean_mag": "phot.mag;stat.mean", "std_mag": "stat.stdev;phot.mag",
    "n_detections": "meta.number", "n_epochs": "meta.number",
    "stage_run_id": FOREIGN_ID,
    "calibrated": "meta.code.qual", "outlier": "meta.code.qual",
    "label": "meta.id;src",
    "source": "meta.code",
    "kind": "src.class",
    "target_id": FOREIGN_ID,
}

#: per-table UCDs (the public tables the science is read from); names not here fall back on BY_NAME
BY_TABLE = {
    "exposure": {
        "id": MAIN_ID, "path": "meta.ref.uri", "sha256": "meta.checksum",
        "hdu": "meta.number", "catalog_path": "meta.ref.uri", "catalog_sha256": "meta.checksum",
        "instrument": "meta.id;instr", "telescope": "meta.id;instr.tel", "observatory_code": "meta.id;instr.obsty",
        "object": "meta.id;src", "image_type": "meta.code.class", "date_obs": "time.start",
        "night": "time.epoch;obs", "fwhm": "instr.obsty.seeing", "gain": "instr.calib;instr.det",
        "readnoise": "instr.det.noise", "saturation": "instr.saturation", "pixscale": "instr.scale",
        "naxis1": "meta.number", "naxis2": "meta.number", "binning": "instr.param",
        "ra_center": MAIN_RA, "dec_center": MAIN_DEC, "radius": "phys.angSize",
        "corners": "pos.outline;obs.field", "wcs_header": "meta.note", "header": "meta.note",
        "site_lat": "pos.earth.lat", "site_lon": "pos.earth.lon", "site_height": "pos.earth.altitude",
        "pointing_ra": "pos.eq.ra;instr.tel", "pointing_dec": "pos.eq.dec;instr.tel",
        "ccd_temp": "phys.temperature;instr.det", "wcs_status": "meta.code.status", "wcs_source": "meta.note",
        "wcs_refcat": "meta.id;meta.dataset", "wcs_nstars": "meta.number", "wcs_rms": "stat.fit.residual",
        "wcs_run_id": FOREIGN_ID, "bkg_mean": "instr.background;stat.mean",
        "bkg_median": "instr.background;stat.median", "bkg_std": "stat.stdev;instr.background",
        "bkg_mad": "stat.stdev;instr.background", "ingested_at": "time.processing",
    },
    "detection": {
        "id": MAIN_ID, "exposure_id": FOREIGN_ID, "fwhm": "phys.angSize;src", "extra": "meta.note",
    },
    "object": {
        "id": MAIN_ID, "chi2_var": "src.var.index", "scamp_source": "meta.id.cross",
    },
    "forced_source": {
        "id": MAIN_ID, "object_id": FOREIGN_ID, "track_id": FOREIGN_ID, "exposure_id": FOREIGN_ID,
        "aperture_radius": "phys.size.radius;instr.det", "aper_corr": "phot.mag;arith.diff",
    },
    "track": {
        "id": MAIN_ID, "rate_ra": "phys.veloc.ang;pos.eq.ra", "rate_dec": "phys.veloc.ang;pos.eq.dec",
        "rate": "phys.veloc.ang", "rate_err": "stat.error;phys.veloc.ang",
        "r2_ra": "stat.fit.goodness", "r2_dec": "stat.fit.goodness", "rms": "stat.fit.residual",
        "status": "meta.code.status", "designation": "meta.id;src", "skybot_name": "meta.id.cross",
        "skybot_sep": "pos.angDistance", "skybot_rate_diff": "phys.veloc.ang;arith.diff",
        "skybot_delta": "pos.distance",
    },
    "zeropoint": {
        "id": MAIN_ID, "exposure_id": FOREIGN_ID, "mag_column": "meta.code", "color_term": "arith.factor;phot.color",
        "color_index": "meta.code;phot.color", "slope": "stat.fit.param", "n_matched": "meta.number",
        "n_used": "meta.number", "chi2_red": "stat.fit.chi2", "r2": "stat.fit.goodness",
        "scatter": "stat.stdev;phot.mag", "method": "meta.code", "refcat": "meta.id;meta.dataset",
        "ok": "meta.code.qual", "residuals": "stat.fit.residual",
    },
    "refcat_source": {
        "id": MAIN_ID, "catalog": "meta.id;meta.dataset", "source_id": "meta.id.cross",
        "ra_err": "stat.error;pos.eq.ra", "dec_err": "stat.error;pos.eq.dec",
        "mags": "phot.mag", "mag_errs": "stat.error;phot.mag",
    },
    "stage_run": {
        "id": MAIN_ID, "stage": "meta.id", "started_at": "time.start", "finished_at": "time.end",
        "status": "meta.code.status", "error": "meta.note", "code_version": "meta.version",
    },
    "lightcurve_point": {
        "exposure_id": FOREIGN_ID, "detection_id": FOREIGN_ID, "forced_id": FOREIGN_ID,
    },
    "exposure_catalog": {"id": MAIN_ID, "exposure_id": FOREIGN_ID, "object_id": FOREIGN_ID},
    "detection_calibrated": {"id": MAIN_ID, "exposure_id": FOREIGN_ID},
    "lightcurve_period": {
        "id": MAIN_ID, "object_id": FOREIGN_ID, "track_id": FOREIGN_ID, "n_points": "meta.number",
        "period": "time.period", "period_err": "stat.error;time.period", "rotation_period": "time.period;src",
        "amplitude": "src.var.amplitude", "fap": "stat.probability",
    },
}

#: (pattern on the column name, UCD) tried after the tables above
_RULES = [
    (re.compile(r"^magerr_"), "stat.error;phot.mag"),
    (re.compile(r"^mag_"), "phot.mag"),
    (re.compile(r"^fluxerr_"), "stat.error;phot.flux"),
    (re.compile(r"^flux_"), "phot.flux"),
    (re.compile(r"_id$"), FOREIGN_ID),
    (re.compile(r"^n_"), "meta.number"),
    (re.compile(r"_at$"), "time.processing"),
]


def column_ucd(table: str, column: str) -> str | None:
    """The UCD1+ of ``table.column``, or None when catdb has none for it.

    Parameters
    ----------
    table : str
        Table or view name (unqualified: catdb's tables live in one schema).
    column : str

    Returns
    -------
    str or None
    """
    t = BY_TABLE.get(table, {})
    if column in t:
        return t[column]
    if column in BY_NAME:
        return BY_NAME[column]
    for pat, ucd in _RULES:
        if pat.search(column):
            return ucd
    return None


def result_ucds(conn, cur, by_name=()) -> list:
    """UCD of each result column of an executed query, from the table column it comes from.

    The origin of a column (table OID, attribute number) is what PostgreSQL reports in the row
    description (libpq ``PQftable``/``PQftablecol``, through subqueries); columns of catdb's own
    schema get :func:`column_ucd` of ``(table, column)``, computed columns None, except the
    names in ``by_name`` (catdb's own computed columns, e.g. ``mag_cal``), looked up by name.

    Parameters
    ----------
    conn : psycopg.Connection
    cur : psycopg.Cursor
        After ``execute`` (e.g. of the query with ``LIMIT 0``).
    by_name : collection of str

    Returns
    -------
    list of (str or None)
    """
    res = cur.pgresult
    desc = cur.description or []
    pairs = [(res.ftable(i), res.ftablecol(i)) if res is not None else (0, 0) for i in range(len(desc))]
    known = {p for p in pairs if p[0]}
    names = {}
    if known:
        for oid, num, rel, att, public in conn.execute(
                "SELECT c.oid, a.attnum, c.relname, a.attname, c.relnamespace = current_schema()::regnamespace "
                "FROM unnest(%s::oid[], %s::int[]) AS t(oid, num) JOIN pg_class c ON c.oid = t.oid "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = t.num",
                ([p[0] for p in known], [p[1] for p in known])).fetchall():
            names[(oid, num)] = (rel, att) if public else None
    out = []
    for c, p in zip(desc, pairs):
        ra = names.get(p)
        if ra:
            out.append(column_ucd(*ra))
        elif c.name in by_name:
            out.append(column_ucd("", c.name))
        else:
            out.append(None)
    return out
