"""What ``catdb run`` export steps call: one function, the export kind as a name.

Kinds: ``table`` (any table/view/query: option ``source``), ``catalog`` (the calibrated catalogue),
``tracks-mpc`` / ``tracks-ades`` (candidate astrometry), ``lightcurve`` (the forced photometry of
one track, default the named target's track linked by the ``ephemeris`` stage, else the candidate
with most forced measurements, as CSV/VOTable/...; as ALCDEF with option ``format = "alcdef"``
or a ``.alcdef`` file name, options ``track_id``, ``object_name``, ``exclude_flagged``,
``contact_name``, ``contact_info``, ``observers``: :func:`catdb.export.alcdef.export_lightcurve_alcdef`).
The format follows the file extension (.csv, .vot/.xml, .fits, .parquet, .ecsv).
"""
from __future__ import annotations

from psycopg import sql

from ..errors import CatdbError
from ..schema.review_tables import EXPORTED_DECISIONS
from .alcdef import export_lightcurve_alcdef
from .formats import export_catalog, export_query, export_table
from .lightcurve import lightcurve_sql
from .tracks import export_tracks


def lightcurve_query(track_id: int | None = None):
    """SQL of a track's forced-photometry light curve (time, calibrated magnitude, flux).

    Read from the view ``lightcurve_point`` through :func:`catdb.export.lightcurve.lightcurve_sql`.

    Parameters
    ----------
    track_id : int, optional
        The track; default the target: the track the ``ephemeris`` stage linked to the named
        target (table ``ephemeris_target``, the latest link of a candidate track), else the
        candidate track with most unflagged forced measurements (then the brightest).

    Returns
    -------
    psycopg.sql.Composed
        One SELECT, values inlined as literals: columns ``track_id``, ``mjd_mid`` [d], ``mag``,
        ``mag_err`` [mag], ``band``, ``flux``, ``flux_err`` [adu], ``ra``, ``dec`` [deg], ``flags``,
        ``exposure_id``, ordered by time.
    """
    select = sql.SQL("p.target_id AS track_id, p.mjd_mid, p.mag_cal AS mag, p.magerr_cal AS mag_err, p.band, "
                     "p.flux, p.flux_err, p.ra, p.dec, p.flags, p.exposure_id")
    target = sql.Literal(int(track_id)) if track_id is not None else _target_sql()
    q, _ = lightcurve_sql("track", target, source="forced", select=select, inline=True)
    return q


#: the target track: the ephemeris stage's link, else the candidate with most unflagged forced measurements
_TARGET_SQL = ("COALESCE((SELECT et.track_id FROM ephemeris_target et JOIN track t ON t.id = et.track_id "
               "WHERE t.status = 'candidate' ORDER BY et.stage_run_id DESC, et.id DESC LIMIT 1), "
               "(SELECT f2.track_id FROM forced_source f2 JOIN track t ON t.id = f2.track_id "
               "WHERE t.status = 'candidate' AND f2.flags = 0 GROUP BY f2.track_id "
               "ORDER BY count(*) DESC, min(t.mean_mag) LIMIT 1))")


def _target_sql():
    return sql.SQL(_TARGET_SQL)


def target_track(conn) -> int | None:
    """Id of the target track (see :func:`lightcurve_query`), or None when there is none."""
    return conn.execute("SELECT " + _TARGET_SQL).fetchone()[0]


def export(conn, kind: str, path, **options) -> int:
    """Write one export (what ``catdb run`` export steps and :func:`catdb.export` call).

    Parameters
    ----------
    conn : psycopg.Connection
    kind : {'table', 'catalog', 'tracks-mpc', 'tracks-ades', 'lightcurve'}
        What to write (see the module docstring).
    path : str or os.PathLike
        Output file; its extension picks the format (.csv, .vot/.xml, .fits, .parquet, .ecsv;
        .alcdef for a light curve as ALCDEF).
    **options
        ``table``: ``source`` (table, view or SELECT; required), ``where``, ``columns``;
        ``catalog``: ``where``, ``zp_band``; ``tracks-*``: ``status``, ``obscode``, ``all``
        (also tracks not reviewed real/known); ``lightcurve``: ``track_id``, ``format``,
        ``object_name``, ``exclude_flagged``, ``contact_name``, ``contact_info``, ``observers``,
        ``source``.

    Returns
    -------
    int
        Rows written (observations for tracks, points for a light curve).

    Raises
    ------
    catdb.errors.CatdbError
        Unknown kind, a missing option, or a failing query.
    """
    if kind == "catalog":
        return export_catalog(conn, path, where=options.get("where"), zp_band=options.get("zp_band")).n_rows
    if kind == "table":
        if "source" not in options:
            raise CatdbError("export kind 'table' needs option source (a table, view or SELECT)")
        return export_table(conn, options["source"], path, where=options.get("where"),
                             columns=options.get("columns")).n_rows
    if kind in ("tracks-mpc", "tracks-ades"):
        # only tracks reviewed real/known (catdb serve /review) unless the step says all = true
        res = export_tracks(conn, path, "mpc80" if kind == "tracks-mpc" else "ades",
                            status=options.get("status", "candidate"), obscode=options.get("obscode"),
                            decisions=None if _truthy(options.get("all", False)) else EXPORTED_DECISIONS)
        return int(res.get("observations", 0))
    if kind == "lightcurve" and (options.get("format") == "alcdef" or str(path).lower().endswith(".alcdef")):
        track = options.get("track_id")
        track = track if track is not None else target_track(conn)
        if track is None:
            raise CatdbError("ALCDEF export: no target track (no candidate track with forced photometry, no "
                             "ephemeris link); give option track_id")
        contact = {"CONTACTNAME": options.get("contact_name"), "CONTACTINFO": options.get("contact_info"),
                   "OBSERVERS": options.get("observers")}
        back = export_lightcurve_alcdef(conn, path, track=int(track), object_name=options.get("object_name"),
                                        contact=contact, source=options.get("source", "auto"),
                                        exclude_flagged=bool(options.get("exclude_flagged", False)))
        return sum(len(s) for s in back)
    if kind == "lightcurve":
        return export_query(conn, lightcurve_query(options.get("track_id")), path).n_rows
    raise CatdbError(f"unknown export kind {kind!r}: catalog, table, tracks-mpc, tracks-ades, lightcurve")


def _truthy(v) -> bool:
    """A pipeline option as a boolean (TOML true/false, or the strings true/false/yes/no/1/0)."""
    if isinstance(v, str):
        if v.strip().lower() in ("true", "yes", "1"):
            return True
        if v.strip().lower() in ("false", "no", "0", ""):
            return False
        raise CatdbError(f"option all = {v!r}: expected true or false")
    return bool(v)
