"""Stage ``veto``: a VASCO60-style veto chain that keeps a survivor set per step and a ledger.

Input: the detections of the selected exposures (``input=detections``), or a
survivor set written earlier (``input=SET`` for its last step, ``input=SET:STEP``),
restricted to the selected exposures.  Each step of ``steps`` (see
:data:`catdb.algorithms.veto.VETOES`) removes detections from the current set
in one set-based statement; the catalogue vetoes are spatial anti-joins
composed by :mod:`catdb.spatial.sql`.  After each step the survivors are
written to ``survivor (set_name, step, detection_id, stage_run_id)`` (step 0 =
the input) and one ``ledger`` row (``filter``, ``n_in``, ``n_rejected``,
``n_kept``, ``params``).  Every step's ``params`` has ``veto``, ``arg``,
``n_untested`` (detections the step could not test: NULL column, no exposure
size, no cached SkyBoT cone; kept) and ``note`` (the same in words, or NULL),
then the step's thresholds.  The detections a step rejected are those of step
k - 1 not in step k (saved query ``veto-rejected``); ``catdb export ledger``
adds ``rejected_pct`` and writes CSV or JSON with the same columns.

The VASCO chain (Solano, Villarroel & Rodrigo 2022, MNRAS 515, 1380) is
``flags,snr,fwhm_px,elongation,spread_model,clip`` (the defaults are their
thresholds), then ``spikes:CAT``, ``sso`` (after stage ``skybot`` or ``catdb
skybot import`` filled the cache), one ``refcat:CAT@R`` per modern catalogue
and ``dec:MIN..MAX``.

Re-running with the same ``set`` replaces the whole set (all steps) and the
ledger rows of the earlier runs that wrote it.
"""
from __future__ import annotations

import json

from psycopg import sql

from ..algorithms import veto as V
from ..errors import CatdbError
from ..spatial import sql as sp
from .base import Param, Stage, StageContext, register


def rejected_sql(step: V.Step, params: dict, catalogs: list[str] | None = None
                 ) -> tuple[sql.Composable, dict, sql.Composable | None]:
    """SQL selecting the ``detection_id`` of the current survivors that ``step`` rejects.

    The current survivors are the temporary table ``_veto_cur(detection_id, exposure_id, ra, dec,
    epoch)``.  For the flag and shape vetoes a detection whose tested column (or the exposure's
    size) is NULL is *kept* (nothing shows it is bad) and counted as untested.

    Parameters
    ----------
    step : catdb.algorithms.veto.Step
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

    Spikes: see :func:`catdb.algorithms.veto.spike_geometry`; needs the temporary table ``_veto_stars`` of
    :func:`setup_sql`.  SSO: pairs with the SkyBoT predictions of the same exposure (temporary
    table ``_veto_sso`` of :func:`setup_sql`) closer than ``sso_radius``; detections on exposures
    without a usable cached cone are kept and counted untested.
    """
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
        unt = med + sql.SQL("SELECT count(*) ") + frm + sql.SQL(
            "WHERE {c} IS NULL OR med.fwhm_med IS NULL").format(c=col)
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
        v = {"clip_sigma": float(arg) if arg else float(params["clip_sigma"]), "mad_to_std": V.MAD_TO_STD}
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
            "WHERE abs(v.fw - m.fw_med) > %(clip_sigma)s * s.fw_std "
            "OR abs(v.el - m.el_med) > %(clip_sigma)s * s.el_std")
        unt = stats + sql.SQL("SELECT count(*) ") + frm + sql.SQL("WHERE v.fw IS NULL OR v.el IS NULL")
        return q, v, unt
    if kind == "spikes":
        geo = V.spike_geometry(step, params)
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
        unt = sql.SQL("SELECT count(*) FROM _veto_cur c "
                      "WHERE c.exposure_id NOT IN (SELECT exposure_id FROM _veto_cone)")
        return q, dict(pj.params), unt
    raise CatdbError(f"unknown veto {kind!r}")  # pragma: no cover - parse_steps refuses it


def setup_sql(step: V.Step, params: dict, catalogs: list[str] | None = None) -> list[tuple[sql.Composable, dict]]:
    """Statements to run before :func:`rejected_sql` of ``step`` (temporary tables, q3c index).

    ``spikes``: ``_veto_stars(ra, dec, mag, length)``, the stars of ``catalogs`` brighter than
    ``spike_mag`` with their spike half-length (arcsec, :func:`catdb.algorithms.veto.spike_geometry`).
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
    if step.kind == "spikes":
        geo = V.spike_geometry(step, params)
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


@register
class Veto(Stage):
    name = "veto"
    description = ("Veto chain (flags, edge, shape, SNR, FWHM, SPREAD_MODEL, sigma clip, duplicates, catalogue "
                   "counterparts, bright-star spikes, known Solar System objects, Dec) keeping survivor sets + ledger")
    scope_params = ("set",)
    params = [
        Param("set", str, None, "Survivor set name (required); re-running replaces the set"),
        Param("steps", str, "flags,refcat", "Comma list of vetoes: flags, edge, elongation, fwhm (relative), "
              "fwhm_px (pixels), snr, spread_model, clip, dec, duplicates, sso, refcat[:NAME[+NAME]][@ARCSEC], "
              "spikes[:NAME[+NAME]][@MAG]; name:value (ranges lo..hi) overrides the matching parameter, e.g. "
              "snr:30,fwhm_px:2..7,elongation:1.3,spread_model:-0.002,clip:2,dec:-30..90"),
        Param("input", str, "detections", "'detections' (of the selected exposures) or a survivor set SET[:STEP]"),
        Param("refcat", str, None, "Catalogue name(s) (refcat_source.catalog, '+' or ',' separated) for a bare "
              "refcat step"),
        Param("radius", float, 5.0, "Counterpart radius of the refcat vetoes [arcsec]"),
        Param("use_pm", bool, False, "Move catalogue stars by their proper motion to the exposure epoch "
              "(q3c_join_pm; needs exposure mjd_mid)"),
        Param("flags_max", int, 0, "flags veto: reject SExtractor FLAGS > this"),
        Param("edge_pix", float, 10.0, "edge veto: reject within this many pixels of the image edge [pix]"),
        Param("elongation_max", float, 1.3, "elongation veto: reject ELONGATION (A/B) > this"),
        Param("fwhm_min", float, 0.5, "fwhm veto: reject FWHM < this x the exposure median"),
        Param("fwhm_max", float, 2.0, "fwhm veto: reject FWHM > this x the exposure median"),
        Param("fwhm_column", str, "fwhm_image", "fwhm veto: detection column", choices=("fwhm_image", "fwhm")),
        Param("dup_radius", float, 2.0, "duplicates veto: detections closer than this on one exposure [arcsec]"),
        Param("snr_min", float, 30.0, "snr veto: reject SNR (FLUX_AUTO/FLUXERR_AUTO) <= this (VASCO: 30)"),
        Param("fwhm_px_min", float, 2.0, "fwhm_px veto: reject FWHM_IMAGE < this (VASCO: 2) [pix]"),
        Param("fwhm_px_max", float, 7.0, "fwhm_px veto: reject FWHM_IMAGE > this (VASCO: 7) [pix]"),
        Param("spread_model_min", float, -0.002, "spread_model veto: reject SPREAD_MODEL <= this (VASCO: -0.002); "
              "NULL kept and counted"),
        Param("clip_sigma", float, 2.0, "clip veto: reject FWHM or ELONGATION beyond median +- this x 1.4826 MAD "
              "of the exposure's current survivors (one iteration; VASCO: 2)"),
        Param("spike_refcat", str, None, "spikes veto: catalogue name(s) of the bright stars (default: refcat)"),
        Param("spike_mag", float, 12.0, "spikes veto: stars with magnitude <= this have spikes [mag]"),
        Param("spike_band", str, None, "spikes veto: band of refcat_source.mags (default: the star's brightest)"),
        Param("spike_length", float, 30.0, "spikes veto: half-length of a spike, star at spike_mag [arcsec]"),
        Param("spike_width", float, 3.0, "spikes veto: reject within this distance of a spike line [arcsec]"),
        Param("spike_scale", bool, False, "spikes veto: length x 10**(0.2 (spike_mag - mag)), spikes ~ flux**0.5"),
        Param("spike_length_max", float, 300.0, "spikes veto: longest spike with spike_scale [arcsec]"),
        Param("spike_axes", str, "radec", "spikes veto: the cross along RA/Dec, or along the exposure's pixel axes "
              "(its WCS; RA/Dec without one)", choices=("radec", "pixel")),
        Param("sso_radius", float, 10.0, "sso veto: reject within this of a SkyBoT prediction (cache) [arcsec]"),
        Param("sso_max_epoch_diff", float, 1.0, "sso veto: a cached cone is used when its epoch is this close to "
              "mid-exposure [h]"),
        Param("dec_min", float, -90.0, "dec veto: reject Dec < this [deg]"),
        Param("dec_max", float, 90.0, "dec veto: reject Dec > this [deg]"),
    ]
    outputs = []

    def _check(self, ctx):
        p = ctx.params
        if not p["set"] or not str(p["set"]).strip():
            raise CatdbError("stage veto: parameter set (the survivor set name) is required, e.g. --param set=vasco")
        if p["radius"] is None or not p["radius"] > 0:
            raise CatdbError(f"parameter radius: expected a positive number of arcsec, got {p['radius']!r}")
        for k in ("edge_pix", "elongation_max", "fwhm_min", "fwhm_max", "dup_radius", "fwhm_px_min", "fwhm_px_max",
                  "spike_length_max", "sso_max_epoch_diff"):
            # (float parameters are finite: Param.parse refuses NaN and inf)
            if p[k] is None or not p[k] >= 0:
                raise CatdbError(f"parameter {k}: expected a non-negative number, got {p[k]!r}")
        for k in ("clip_sigma", "spike_length", "spike_width", "sso_radius"):
            if p[k] is None or not p[k] > 0:
                raise CatdbError(f"parameter {k}: expected a positive number, got {p[k]!r}")
        for k in ("snr_min", "spread_model_min", "spike_mag"):
            if p[k] is None:
                raise CatdbError(f"parameter {k}: expected a finite number, got {p[k]!r}")
        if not -90 <= p["dec_min"] <= p["dec_max"] <= 90:
            raise CatdbError(f"parameters dec_min, dec_max: expected -90 <= dec_min <= dec_max <= 90 deg, got "
                             f"{p['dec_min']!r}, {p['dec_max']!r}")
        if p["fwhm_px_min"] > p["fwhm_px_max"]:
            raise CatdbError(f"parameters fwhm_px_min, fwhm_px_max: empty range {p['fwhm_px_min']!r}.."
                             f"{p['fwhm_px_max']!r}")
        return V.parse_steps(p["steps"], p["refcat"], p["spike_refcat"])

    def replace(self, ctx: StageContext) -> int:
        """Delete the survivor set ``set`` and the ledger rows of earlier runs that wrote it."""
        self._steps = self._check(ctx)
        s = ctx.params["set"]
        n = ctx.execute("DELETE FROM survivor WHERE set_name = %s", (s,)).rowcount
        n += ctx.execute("DELETE FROM ledger WHERE stage_run_id IN (SELECT id FROM stage_run WHERE stage = %s "
                         "AND params->>'set' = %s AND id <> %s)", (self.name, s, ctx.run_id)).rowcount
        return n

    def _load_input(self, ctx) -> str:
        p = ctx.params
        cols = sql.SQL("d.id, d.exposure_id, d.ra, d.dec, 2000.0 + (e.mjd_mid - 51544.5) / 365.25")
        base = sql.SQL("CREATE TEMP TABLE _veto_cur ON COMMIT DROP AS SELECT {} AS epoch ").format(cols)
        src = (p["input"] or "detections").strip()
        if src == "detections":
            ctx.execute(base + sql.SQL("FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                                       "WHERE d.exposure_id = ANY(%s)"), (ctx.inputs,))
            label = "input:detections"
        else:
            name, _, step = src.partition(":")
            if name == p["set"]:
                raise CatdbError(f"parameter input: set {name!r} cannot be the input of itself (it is replaced)")
            row = ctx.execute("SELECT max(step) FROM survivor WHERE set_name = %s", (name,)).fetchone()
            if row[0] is None:
                raise CatdbError(f"parameter input: no survivor set named {name!r} (run stage veto with set={name} "
                                 "first, or input=detections)")
            try:
                step = int(step) if step else int(row[0])
            except ValueError:
                raise CatdbError(f"parameter input: expected SET or SET:STEP (an integer), got {src!r}") from None
            ctx.execute(base + sql.SQL("FROM survivor s JOIN detection d ON d.id = s.detection_id "
                                       "JOIN exposure e ON e.id = d.exposure_id "
                                       "WHERE s.set_name = %s AND s.step = %s AND d.exposure_id = ANY(%s)"),
                        (name, step, ctx.inputs))
            label = f"input:{name}:{step}"
        ctx.execute("ALTER TABLE _veto_cur RENAME COLUMN id TO detection_id")
        ctx.execute("ALTER TABLE _veto_cur ADD PRIMARY KEY (detection_id)")

        ctx.execute(*sp.ipix_index("_veto_cur", name="_veto_cur_q3c"))
        ctx.execute("ANALYZE _veto_cur")
        return label

    def _keep(self, ctx, step_no):
        return ctx.execute(
            "INSERT INTO survivor (set_name, step, detection_id, stage_run_id) "
            "SELECT %s, %s, detection_id, %s FROM _veto_cur", (ctx.params["set"], step_no, ctx.run_id)).rowcount

    def _ledger(self, ctx, step_no, label, n_in, n_rej, n_kept, params):
        ctx.execute("INSERT INTO ledger (stage_run_id, step, filter, n_in, n_rejected, n_kept, params) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (ctx.run_id, step_no, label, n_in, n_rej, n_kept, json.dumps(params)))

    def _pixel_angles(self, ctx):
        """Temp table _veto_pa(exposure_id, pa): position angle of +y of each input exposure with a WCS."""
        # a registered WCS has an assumed rotation: no pixel axis angle from it (RA/Dec spikes, counted)
        rows = ctx.execute("SELECT e.id, CASE WHEN e.wcs_status IN ('header', 'solved') THEN e.wcs_header END "
                           "FROM exposure e WHERE e.id IN (SELECT DISTINCT exposure_id FROM _veto_cur)").fetchall()
        pa = V.pixel_axis_angles([r[1] for r in rows])
        ids = [r[0] for r in rows]
        ctx.execute("DROP TABLE IF EXISTS _veto_pa")
        # no WCS: NaN (equal to itself in SQL)
        ctx.execute("CREATE TEMP TABLE _veto_pa ON COMMIT DROP AS SELECT * FROM unnest(%s::bigint[], "
                    "%s::double precision[]) AS t(exposure_id, pa) WHERE pa <> 'NaN'",
                    (ids, [float(x) for x in pa]))

    def _notes(self, ctx, step, info, cats) -> dict:
        """What the ledger says beyond the counts: the untested detections of a step, in words."""
        n_unt = info.get("n_untested")
        if step.kind == "spread_model":
            return {"note": f"{n_unt} detection(s) have no SPREAD_MODEL (kept)" if n_unt else None}
        if step.kind == "spikes":
            geo = V.spike_geometry(step, ctx.params)
            n_stars = ctx.execute("SELECT count(*) FROM _veto_stars").fetchone()[0]
            out = {**{k: geo[k] for k in ("spike_length", "spike_length_max", "spike_scale", "spike_band",
                                          "spike_axes")}, "n_stars": n_stars,
                   "geometry": "cross along RA and Dec through each star" if geo["spike_axes"] == "radec" else
                   "cross along the exposure's pixel axes through each star",
                   "note": None if n_stars else f"no star of {'+'.join(cats)} brighter than {geo['spike_mag']}"}
            if geo["spike_axes"] == "pixel":
                n_exp, n_pa = ctx.execute("SELECT (SELECT count(DISTINCT exposure_id) FROM _veto_cur), "
                                          "(SELECT count(*) FROM _veto_pa)").fetchone()
                out["n_exposures_no_wcs"] = n_exp - n_pa
                if n_exp - n_pa:
                    out["note"] = ((out["note"] + "; ") if out["note"] else "") + (
                        f"{n_exp - n_pa} exposure(s) without a WCS: spikes along RA/Dec there")
            return out
        if step.kind == "sso":
            row = ctx.execute("SELECT count(DISTINCT exposure_id), (array_agg(DISTINCT exposure_id ORDER BY "
                              "exposure_id))[1:50] FROM _veto_cur WHERE exposure_id NOT IN "
                              "(SELECT exposure_id FROM _veto_cone)").fetchone()
            n_cones, n_pred = ctx.execute("SELECT (SELECT count(*) FROM _veto_cone), "
                                          "(SELECT count(*) FROM _veto_sso)").fetchone()
            out = {"n_exposures_with_cone": n_cones, "n_predictions": n_pred, "n_exposures_no_cone": row[0],
                   "exposures_no_cone": row[1] or []}
            if row[0]:
                out["note"] = (f"{row[0]} exposure(s) have no usable cached SkyBoT cone (their {n_unt} detection(s) "
                               "were not tested; run stage skybot or catdb skybot import)")
            return out
        if n_unt:
            return {"note": f"{n_unt} detection(s) could not be tested (NULL value or missing exposure data; kept)"}
        return {}

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        steps = getattr(self, "_steps", None) or self._check(ctx)
        label = self._load_input(ctx)
        n = self._keep(ctx, 0)
        self._ledger(ctx, 0, label, n, 0, n, {"veto": "input", "arg": p["input"], "input": p["input"],
                                              "n_untested": None, "note": None})
        if p["use_pm"] and any(s.kind == "refcat" for s in steps):
            miss = ctx.execute("SELECT count(DISTINCT exposure_id), min(exposure_id) FROM _veto_cur "
                               "WHERE epoch IS NULL").fetchone()
            if miss[0]:
                raise CatdbError(f"use_pm: {miss[0]} input exposure(s) have no mjd_mid (e.g. exposure {miss[1]}); "
                                 "proper motions need the epoch")
        total = n
        ledger = [(0, label, n, 0, n)]
        for k, step in enumerate(steps, start=1):
            cats = resolve_catalogs(ctx.conn, step.arg) if step.kind in V.CATALOG_VETOES else None
            for stmt, vals in setup_sql(step, p, cats):
                ctx.execute(stmt, vals or None)
            if step.kind == "spikes" and p["spike_axes"] == "pixel":
                self._pixel_angles(ctx)
            rej, values, untested = rejected_sql(step, p, cats)
            info = {"veto": step.kind, "arg": step.arg, "n_untested": None, "note": None,
                    **{k2: v for k2, v in values.items() if k2 != "radius"}}
            if step.kind in ("refcat", "duplicates", "sso"):
                info["radius_arcsec"] = values["radius"] * 3600.0
            if untested is not None:
                info["n_untested"] = ctx.execute(untested, values).fetchone()[0]
            info.update(self._notes(ctx, step, info, cats))
            n_in = n
            n_rej = ctx.execute(sql.SQL("DELETE FROM _veto_cur WHERE detection_id IN ({})").format(rej),
                                values).rowcount
            n = n_in - n_rej
            kept = self._keep(ctx, k)
            if kept != n:  # pragma: no cover - the set must be what the ledger says
                raise CatdbError(f"veto step {k}: kept {kept} rows but the ledger says {n}")
            self._ledger(ctx, k, step.label, n_in, n_rej, n, info)
            ledger.append((k, step.label, n_in, n_rej, n))
            total += kept
        ctx.execute("DROP TABLE _veto_cur")
        return {"survivor": total, "ledger": len(ledger), "n_input": ledger[0][2], "n_final": n,
                "chain": [f"{lab}: {a} -> {c}" for _, lab, a, _, c in ledger]}
