"""Astrometry of mover tracks for the Minor Planet Center (80-column records, ADES 2022 PSV or XML).

:func:`export_tracks` selects the tracks of one status (default the candidates of the
``movers`` stage) and their member detections (outliers of the fit excluded) with the
exposure's ``mjd_mid``, and writes them with :func:`catdb.export.mpc.format_mpc80` or
:func:`~catdb.export.mpc.format_ades_psv` (formats: MPC, "Format for optical astrometric
observations", https://minorplanetcenter.net/iau/info/OpticalObs.html; IAU ADES 2022, validated
against the ADES master's XML schema by :mod:`catdb.export.ades`).

Identification per track: ``track.designation`` when it is a number (``5945`` ->
permanent number) or a provisional designation (``2019 AB12``); otherwise a trkSub /
temporary designation ``<prefix><track id>`` (at most 7 characters, e.g. ``cdb0042``).
Magnitudes: ``mag_auto + zp`` with the zeropoint's band when the exposure has an ``ok``
absolute zeropoint (method pp or regression); without one (none, or only a relative/ensemble
zeropoint, whose scale is arbitrary) the magnitude is left blank (the MPC takes calibrated
magnitudes only), and so it is when the zeropoint's band has no MPC band code (e.g. Tycho-2
``VT``: a blank band column would read as the MPC's default band; counted in the result's
``mag_no_mpc_band``).  The observatory code is ``obscode`` when given, else each exposure's
``observatory_code``.  Every record written is parsed back and checked
(``catdb export mpc`` / ``catdb export ades``).

Also here: :func:`track_cutouts` (FITS cutouts with WCS and a PNG strip, ``catdb cutouts``).
Light curves are :mod:`catdb.export.lightcurve` (``lightcurve_points`` here calls it).
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
from astropy.time import Time

from ..algorithms.cutout import cutout_hdus, cutout_strip_png
from ..errors import InputError
from ..ingest.headers import header_from_cards
from ..review import LATEST_SQL
from ..schema.review_tables import EXPORTED_DECISIONS
from .ades import ADES_VERSION, ast_cat_code, psv_to_xml, validate_ades_xml
from .lightcurve import lightcurve
from .mpc import check_absolute_astrometry, format_ades_psv, format_mpc80, parse_ades_psv, parse_mpc80

_PROV = re.compile(r"^\d{4} [A-HJ-Y][A-HJ-Z]\d*$")

#: one-letter MPC band codes for common catalogue bands
_MPC_BAND = {"G": "G", "g": "g", "r": "r", "i": "i", "z": "z", "y": "y", "V": "V", "R": "R", "B": "B",
             "I": "I", "U": "U", "J": "J", "H": "H", "K": "K", "w": "w", "c": "c", "o": "o", "VR": "R"}


#: MPC 80-column header keywords written from the ``header`` mapping, in this order
#: (MPC, "Submission of observations", header records: COD, CON, OBS, MEA, TEL, NET, ACK, AC2, COM)
MPC_HEADER_KEYS = ("CON", "OBS", "MEA", "TEL", "NET", "BND", "COM", "ACK", "AC2")
_WRAP = {"OBS", "MEA", "COM", "CON"}


def _fetch(conn, status, track_ids=None):
    cond, params = "t.status = %s", [status]
    if track_ids:
        cond, params = "t.id = ANY(%s)", [list(map(int, track_ids))]
    rows = conn.execute(
        f"""SELECT t.id, t.designation, e.mjd_mid, d.ra, d.dec, d.ra_err, d.dec_err,
                  d.mag_auto + z.zp, z.band, d.magerr_auto, e.observatory_code, e.id, t.rms, e.wcs_refcat
           FROM track t JOIN track_detection td ON td.track_id = t.id AND NOT td.outlier
           JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
           LEFT JOIN LATERAL (SELECT zp, band FROM zeropoint WHERE exposure_id = e.id AND ok
                              AND method NOT IN ('relative', 'ensemble')
                              ORDER BY id DESC LIMIT 1) z ON true
           WHERE {cond} ORDER BY t.id, e.mjd_mid""", params).fetchall()  # cond: one of two literals
    names = ("track_id", "designation", "mjd", "ra", "dec", "ra_err", "dec_err", "mag", "band", "magerr",
             "obscode", "exposure_id", "track_rms", "wcs_refcat")
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    out = {}
    for k, v in zip(names, cols):
        if k in ("designation", "band", "obscode", "wcs_refcat"):
            out[k] = np.array(v, dtype=object)
        else:
            out[k] = np.array([np.nan if x is None else x for x in v], dtype=float)
    out["track_id"] = out["track_id"].astype(np.int64)
    out["exposure_id"] = out["exposure_id"].astype(np.int64)
    return out


def mpc_header_lines(header: dict | None, obscode: str) -> list[str]:
    """The header block of an MPC 80-column submission.

    Parameters
    ----------
    header : dict or None
        Keys among :data:`MPC_HEADER_KEYS` (case-insensitive; e.g. ``{"con": "A. Astronomer,
        Lowell Observatory [a@b.org]", "obs": "A. Astronomer", "mea": "B. Measurer",
        "tel": "1.1-m f/8 reflector + CCD", "net": "Gaia-DR2", "ack": "catdb night 1",
        "ac2": "a@b.org"}``); values are strings or lists of strings.  ``OBS``, ``MEA``,
        ``COM`` and ``CON`` values longer than one line are wrapped onto several lines with
        the same keyword.
    obscode : str
        The ``COD`` line's 3-character observatory code.

    Returns
    -------
    list of str
        ``COD 688`` first, then the given keywords, each line at most 80 characters.

    Raises
    ------
    InputError
        An unknown keyword, a bad observatory code, or an ``ACK``/``AC2``/``TEL``/``NET``
        value longer than 76 characters.
    """
    if not isinstance(obscode, str) or len(obscode) != 3:
        raise InputError(f"COD needs one 3-character MPC observatory code, got {obscode!r}", keyword="COD")
    lines = [f"COD {obscode}"]
    header = {str(k).upper(): v for k, v in (header or {}).items()}
    unknown = sorted(set(header) - set(MPC_HEADER_KEYS) - {"COD"})
    if unknown:
        raise InputError(f"unknown MPC header keyword(s) {unknown}: expected {', '.join(MPC_HEADER_KEYS)}",
                         keyword=unknown[0])
    for key in MPC_HEADER_KEYS:
        if key not in header or header[key] in (None, ""):
            continue
        values = header[key] if isinstance(header[key], (list, tuple)) else [header[key]]
        for v in values:
            v = " ".join(str(v).split())
            parts = textwrap.wrap(v, 76) if key in _WRAP else [v]
            for part in parts:
                if len(part) > 76:
                    raise InputError(f"{key} value is {len(part)} characters, at most 76 fit on an MPC header "
                                     f"line: {part!r}", keyword=key)
                lines.append(f"{key} {part}")
    return lines


def _validate_mpc80(lines, n_header, expect, path):
    """Parse the written records back and compare with what was meant; raise on any difference."""
    for i, line in enumerate(lines[:n_header], 1):
        if len(line) > 80 or not (line[:3].isalpha() and line[:3].isupper() and line[3:4] == " "):
            raise InputError(f"MPC header line is not 'KEY value' within 80 characters: {line!r}", path=path, row=i)
    t = parse_mpc80(lines[n_header:])
    if len(t) != expect["mjd"].size:
        raise InputError(f"{len(t)} records parse back, {expect['mjd'].size} written", path=path)
    dt = np.abs(np.asarray(t["mjd"]) - expect["mjd"]) * 86400.0
    cosd = np.cos(np.radians(expect["dec"]))
    dra = np.abs(((np.asarray(t["ra"]) - expect["ra"] + 180.0) % 360.0 - 180.0) * cosd) * 3600.0
    ddec = np.abs(np.asarray(t["dec"]) - expect["dec"]) * 3600.0
    # rounding limits: 1e-5 d, 0.01 s of time, 0.1 arcsec (half of each, plus float slack)
    bad = (dt > 0.5e-5 * 86400 + 1e-3) | (dra > 0.075 + 1e-6) | (ddec > 0.05 + 1e-6) \
        | (np.asarray(t["designation"]).astype(str) != expect["designation"].astype(str))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"record does not parse back to what was meant (designation "
                         f"{expect['designation'][i]!r}, MJD {expect['mjd'][i]:.6f}, RA {expect['ra'][i]:.6f}, "
                         f"Dec {expect['dec'][i]:.6f}): {lines[n_header + i]!r}", path=path,
                         row=n_header + i + 1)
    return t


def _validate_ades(text, stn, expect, path):
    header, t = parse_ades_psv(text)
    if header.get("version") != ADES_VERSION or header.get("observatory", {}).get("mpcCode") != stn:
        raise InputError(f"ADES header does not parse back (version {ADES_VERSION}, mpcCode {stn})", path=path)
    xml = psv_to_xml(text)
    how, errors = validate_ades_xml(xml)
    if errors:
        raise InputError(f"the ADES document does not validate against {how} ({len(errors)} errors): "
                         + "; ".join(errors[:3]), path=path)
    if len(t) != expect["mjd"].size:
        raise InputError(f"{len(t)} ADES rows parse back, {expect['mjd'].size} written", path=path)
    mjd = Time(np.char.rstrip(np.asarray(t["obsTime"]).astype(str), "Z"), format="isot", scale="utc").mjd
    ra = np.asarray(t["ra"]).astype(float)
    dec = np.asarray(t["dec"]).astype(float)
    rms_ra = np.asarray(t["rmsRA"]).astype(float) if "rmsRA" in t.colnames else np.full(len(t), np.nan)
    bad = (np.abs(mjd - expect["mjd"]) * 86400 > 5e-4 + 1e-6) \
        | (np.abs((ra - expect["ra"] + 180) % 360 - 180) > 5e-8 + 1e-12) \
        | (np.abs(dec - expect["dec"]) > 5e-8 + 1e-12) \
        | (np.isfinite(expect["rms_ra"]) & ~(rms_ra >= np.round(expect["rms_ra"], 3) - 1e-9))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"ADES row {i + 1} does not parse back to what was meant", path=path, row=i + 1)
    return xml, how


def export_tracks(conn, path, fmt: str = "mpc80", *, status: str = "candidate", track_ids=None,
                  obscode: str | None = None, prefix: str = "cdb", note2: str = "C", ast_cat: str = "",
                  catalog_code: str = " ", header: dict | None = None, discovery: bool = False,
                  rms_floor: bool = True, decisions=EXPORTED_DECISIONS) -> dict:
    """Write the astrometry of tracks as MPC 80-column records or an ADES PSV file.

    Every line written is parsed back (:func:`catdb.export.mpc.parse_mpc80`,
    :func:`~catdb.export.mpc.parse_ades_psv`) and compared with the values meant
    (designation, time to the written precision, RA/Dec to the rounding of their columns);
    a difference raises and nothing is written.

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or os.PathLike
        Output file (overwritten).
    fmt : {'mpc80', 'ades', 'ades-xml'}
        80-column records, ADES 2022 pipe-separated values or ADES 2022 XML.  An ADES document
        is validated (:func:`catdb.export.ades.validate_ades_xml`) against the ADES master's
        ``submit.xsd`` when the header makes a submission's context (submitter, measurers,
        telescope design/aperture/detector), else ``general.xsd`` (or the documented field
        rules when lxml / iau-ades are not installed).
    status : str
        Tracks with this ``track.status`` (default ``candidate``); ignored with ``track_ids``.
    track_ids : sequence of int, optional
        These tracks (any status).
    obscode : str, optional
        MPC observatory code for every observation; default each exposure's
        ``observatory_code``.
    prefix : str
        Prefix of the temporary designation / trkSub of unidentified tracks, followed by the
        zero-padded track id; together at most 7 characters.
    note2 : str
        80-column note 2 (``C`` = CCD).
    ast_cat, catalog_code : str
        Astrometric catalogue for ADES ``astCat`` (e.g. ``Gaia2``; default from each exposure's
        ``wcs_refcat`` by :func:`catdb.export.ades.ast_cat_code`, ``UNK`` when catdb does not know
        it) and the 80-column code (col 72, e.g. ``V`` for Gaia DR2).
    header : dict, optional
        mpc80: the header block (:func:`mpc_header_lines`: ``con``, ``obs``, ``mea``, ``tel``,
        ``net``, ``ack``, ``ac2``, ``com``; ``COD`` is the observatory code); the records then
        need a single observatory code.  ades: ``submitter``, ``observers`` / ``measurers``
        (lists of names; ``obs`` / ``mea`` strings are split at commas), ``observatory_name``,
        ``telescope`` (dict, e.g. ``{aperture = 1.1, design = "reflector", detector = "CCD"}``).
    discovery : bool
        80-column: discovery asterisk (col 13) on the first observation of every track with a
        temporary designation (MPC: one asterisk per object, on the discovery observation).
    rms_floor : bool
        ADES: ``rmsRA``/``rmsDec`` are at least the track's linear-fit RMS (``track.rms``):
        SExtractor's centroid errors (~0.04") leave out the catalogue and fit errors.
    decisions : sequence of str or None
        Take only tracks whose latest review decision (``track_review``, :mod:`catdb.review`) is
        one of these; default ``real`` and ``known`` (:data:`catdb.schema.EXPORTED_DECISIONS`).
        ``None`` takes every selected track, reviewed or not (``--all``).

    Returns
    -------
    dict
        ``tracks``, ``observations``, ``path``, ``header_lines``, ``left_out`` (tracks of the
        selection not taken: ``{decision or 'unreviewed': n}``) and ``mag_no_mpc_band``
        (magnitudes left blank because their band has no MPC code: ``{band: n}``); ADES also ``ades_validated`` (the
        schema or rules checked) and ``ast_cat`` (the astCat codes written).

    Raises
    ------
    InputError
        Unknown ``fmt``; no tracks; no track reviewed ``real``/``known`` (unless ``decisions`` is None:
        the message says how many candidates there are and how many were reviewed); a track id
        whose decision is not among ``decisions``; an unknown track id; an exposure without observatory code
        when ``obscode`` is not given (the exposure is named); a temporary designation that
        does not fit in 7 characters; several observatory codes in one ADES file or under one
        80-column header; a line that does not parse back; a detection on an exposure whose
        ``wcs_status`` is not absolute (``header``/``solved``: registered-only astrometry is refused,
        :func:`catdb.export.mpc.check_absolute_astrometry`).
    """
    if fmt not in ("mpc80", "ades", "ades-xml"):
        raise InputError(f"fmt: expected 'mpc80', 'ades' or 'ades-xml', got {fmt!r}", keyword="fmt")
    if track_ids:
        track_ids = sorted({int(x) for x in track_ids})
        known = {r[0] for r in conn.execute("SELECT id FROM track WHERE id = ANY(%s)", (track_ids,)).fetchall()}
        missing = [t for t in track_ids if t not in known]
        if missing:
            raise InputError(f"no track {missing[0]} in the database", keyword="track_id")
    track_ids, left_out = _reviewed(conn, status, track_ids, decisions)
    d = _fetch(conn, status, track_ids)
    n = d["mjd"].size
    if n == 0:
        if track_ids:
            raise InputError(f"tracks {track_ids} have no (non-outlier) detections", keyword="track_id")
        raise InputError(f"no tracks with status {status!r} (run the movers stage; candidates have "
                         "status 'candidate')", keyword="status")
    check_absolute_astrometry(conn, d["exposure_id"])
    if obscode:
        code = np.full(n, str(obscode), dtype=object)
    else:
        code = d["obscode"]
        missing = np.array([c is None or not str(c).strip() for c in code])
        if missing.any():
            raise InputError(f"exposure {int(d['exposure_id'][missing][0])} has no observatory_code: pass "
                             "obscode (MPC code, e.g. 688)", keyword="observatory_code")
    codes = sorted(set(code.tolist()))
    tid = d["track_id"]
    width = 7 - len(prefix)
    if width < 1 or int(tid.max()) >= 10 ** width:
        raise InputError(f"prefix {prefix!r} + track id {int(tid.max())} does not fit in 7 characters",
                         keyword="prefix")
    temp = np.char.add(prefix, np.char.zfill(tid.astype(str), width)).astype(object)
    des = np.array([str(x).strip() if x is not None else "" for x in d["designation"]], dtype=object)
    is_num = np.array([x.isdigit() for x in des], dtype=bool)
    is_prov = np.array([bool(_PROV.match(x)) for x in des], dtype=bool)
    number = np.where(is_num, des, "").astype(object)
    provid = np.where(is_prov, des, "").astype(object)
    trk = np.where(is_num | is_prov, "", temp).astype(object)
    band = np.array([_MPC_BAND.get(str(b), "") if b is not None else "" for b in d["band"]], dtype=object)
    mag = np.where(np.isfinite(d["mag"]), d["mag"], np.nan)
    # a magnitude in a band without an MPC code is not written: a blank band column is read as the
    # MPC's default band, so the number would stand for a band it was not measured in
    no_band = np.isfinite(mag) & (band == "")
    mag_no_band = {}
    if no_band.any():
        zb, cnt = np.unique(np.array([str(b) for b in d["band"][no_band]]), return_counts=True)
        mag_no_band = {str(b): int(c) for b, c in zip(zb, cnt)}
        mag = np.where(no_band, np.nan, mag)
    path = Path(path)
    n_header = 0
    extra = {}
    if fmt == "mpc80":
        first = np.r_[True, tid[1:] != tid[:-1]]
        disc = first & (trk != "") if discovery else np.zeros(n, dtype=bool)
        lines = format_mpc80(d["mjd"], d["ra"], d["dec"], number=np.array([int(x) if x else "" for x in number],
                                                                            dtype=object),
                             provid=np.where(trk != "", trk, provid).astype(object), mag=mag, band=band,
                             obscode=code, note2=note2, catalog=catalog_code, discovery=disc)
        if header is not None:
            if len(codes) != 1:
                raise InputError(f"one MPC header (COD) covers one observatory, the observations come from "
                                 f"{codes}: pass obscode or export per site", keyword="obscode")
            ades_only = {"submitter", "observatory_name", "telescope", "observers", "measurers"}
            head = mpc_header_lines({k: v for k, v in header.items() if str(k).lower() not in ades_only}, codes[0])
            n_header = len(head)
            lines = head + lines
        expect = {"mjd": d["mjd"], "ra": d["ra"], "dec": d["dec"],
                  "designation": np.where(is_num | is_prov, des, temp).astype(str)}
        _validate_mpc80(lines, n_header, expect, path)
        path.write_text("\n".join(lines) + "\n")
    else:
        if len(codes) != 1:
            raise InputError(f"ADES file for one observatory expected, tracks come from {codes}: pass obscode "
                             "or export per site", keyword="obscode")
        h = {str(k).lower(): v for k, v in (header or {}).items()}

        def names(key, alt):
            v = h.get(key, h.get(alt, ()))
            if isinstance(v, str):
                v = [x.strip() for x in v.split(",") if x.strip()]
            return list(v)

        floor = np.where(np.isfinite(d["track_rms"]), d["track_rms"], 0.0) if rms_floor else np.zeros(n)
        rms_ra = np.fmax(d["ra_err"], floor)
        rms_dec = np.fmax(d["dec_err"], floor)
        rms_ra = np.where(np.isfinite(d["ra_err"]) | (floor > 0), rms_ra, np.nan)
        rms_dec = np.where(np.isfinite(d["dec_err"]) | (floor > 0), rms_dec, np.nan)
        if ast_cat:
            cats = np.full(n, str(ast_cat), dtype=object)
        else:   # the catalogue the exposure's WCS was solved against; UNK (ADES: unknown) when catdb has none
            cats = np.array([ast_cat_code(x) or "UNK" for x in d["wcs_refcat"]], dtype=object)
        text = format_ades_psv(d["mjd"], d["ra"], d["dec"], stn=codes[0], perm_id=number, prov_id=provid,
                               trk_sub=trk, rms_ra=rms_ra, rms_dec=rms_dec, mag=mag,
                               rms_mag=np.where(np.isfinite(mag), d["magerr"], np.nan), band=band,
                               ast_cat=cats, observatory_name=h.get("observatory_name"),
                               submitter=h.get("submitter", h.get("con")), observers=names("observers", "obs"),
                               measurers=names("measurers", "mea"), telescope=h.get("telescope"))
        xml, how = _validate_ades(text, codes[0], {"mjd": d["mjd"], "ra": d["ra"] % 360.0, "dec": d["dec"],
                                                   "rms_ra": rms_ra}, path)
        if fmt == "ades-xml":
            path.write_bytes(xml)
        else:
            path.write_text(text)
        extra = {"ades_validated": how, "ast_cat": sorted(set(cats.tolist()))}
    return {"tracks": int(np.unique(tid).size), "observations": int(n), "path": str(path),
            "header_lines": n_header, "left_out": left_out, "mag_no_mpc_band": mag_no_band, **extra}


def _reviewed(conn, status, track_ids, decisions):
    """The track ids to export after the review filter, and what was left out ({decision: n}).

    Returns ``(track_ids, {})`` unchanged when ``decisions`` is None.
    """
    if decisions is None:
        return track_ids, {}
    decisions = list(decisions)
    cond, params = "t.status = %s", [status]
    if track_ids:
        cond, params = "t.id = ANY(%s)", [list(track_ids)]
    rows = conn.execute(f"SELECT t.id, r.decision FROM track t LEFT JOIN ({LATEST_SQL}) r ON r.track_id = t.id "
                        f"WHERE {cond} ORDER BY t.id", params).fetchall()  # cond: one of two literals
    keep = [int(t) for t, dec in rows if dec in decisions]
    left = {}
    for _, dec in rows:
        if dec not in decisions:
            left[dec or "unreviewed"] = left.get(dec or "unreviewed", 0) + 1
    wanted = " or ".join(decisions)
    if track_ids:
        bad = [(t, dec) for t, dec in rows if dec not in decisions]
        if bad:
            t, dec = bad[0]
            raise InputError(f"track {t} is {'not reviewed' if dec is None else 'reviewed ' + dec}: the MPC exports "
                             f"take tracks reviewed {wanted} (review them with catdb serve, /review) or pass --all",
                             keyword="track_id")
        return keep, {}
    if rows and not keep:
        n = len(rows)
        n_rev = sum(1 for _, dec in rows if dec is not None)
        what = "candidates" if status == "candidate" else f"tracks with status {status!r}"
        if n_rev == 0:
            raise InputError(f"{n} {what}, none reviewed: review them with catdb serve (/review) or pass --all",
                             keyword="track_review")
        parts = ", ".join(f"{v} {k}" for k, v in sorted(left.items()) if k != "unreviewed")
        raise InputError(f"{n} {what}, {n_rev} reviewed ({parts}), none {wanted}: nothing to export "
                         "(review them with catdb serve, /review, or pass --all)", keyword="track_review")
    return (keep or None), left


# ----------------------------------------------------------------------------
# light curves: moved to catdb.export.lightcurve (one light-curve function, on the view
# lightcurve_point); the names stay importable from here

from .lightcurve import (  # noqa: E402, F401
    AU_LIGHT_DAYS,
    choose_points,
    geocentric_distance,
    light_time_correct,
    parse_target,
)


def _check_target(conn, kind, tid):
    table = "track" if kind == "track" else "object"
    if not conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (tid,)).fetchone():  # table: one of two literals
        raise InputError(f"no {kind} {tid} in the database", keyword=f"{kind}_id")


def lightcurve_points(conn, kind: str, target_id: int):
    """One track's or object's light curve: :func:`catdb.export.lightcurve.lightcurve` of it.

    Raises
    ------
    InputError
        No such track/object.
    """
    return lightcurve(conn, **{kind: int(target_id)})


# ----------------------------------------------------------------------------
# cutouts of track detections as files

def track_cutouts(conn, track_id: int, outdir, size_arcsec: float = 30.0) -> dict:
    """FITS cutouts (with their WCS) around every detection of a track, and a PNG strip.

    For each member detection (outliers included, flagged in the header) the image is the
    exposure's latest ``reduced`` :data:`image_product` when there is one, else the
    exposure's own file; :func:`catdb.algorithms.cutout.cutout_hdus` cuts a
    :class:`astropy.nddata.Cutout2D` (Astropy Collaboration 2018) and the files are written
    as ``track<ID>_<n>_exp<EXPOSURE>.fits`` with ``MJD-MID``, ``TRACK``, ``DETID``, the
    detection's RA/Dec and the source image in the header; ``track<ID>_strip.png`` shows
    them side by side (zscale).

    Parameters
    ----------
    conn : psycopg.Connection
    track_id : int
    outdir : str or os.PathLike
        Created if missing; existing cutouts of this track are overwritten.
    size_arcsec : float
        Side of the square cutouts, arcsec.

    Returns
    -------
    dict
        ``fits`` (list of paths), ``png`` (path or None), ``missing`` (exposure ids whose
        image file is absent or off the image).

    Raises
    ------
    InputError
        No such track, a track without detections, or no image of the track could be read.
    """
    _check_target(conn, "track", track_id)
    rows = conn.execute(
        """SELECT d.id, d.ra, d.dec, e.id, e.mjd_mid, COALESCE(p.path, e.path),
                  CASE WHEN p.path IS NULL THEN e.hdu ELSE p.hdu END, td.outlier, e.wcs_header
           FROM track_detection td JOIN detection d ON d.id = td.detection_id
           JOIN exposure e ON e.id = d.exposure_id
           LEFT JOIN LATERAL (SELECT path, hdu FROM image_product ip WHERE ip.exposure_id = e.id
                              AND ip.kind = 'reduced' ORDER BY ip.id DESC LIMIT 1) p ON true
           WHERE td.track_id = %s ORDER BY e.mjd_mid""", (track_id,)).fetchall()
    if not rows:
        raise InputError(f"track {track_id} has no detections", keyword="track_id")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written, stamps, labels, missing = [], [], [], []
    for k, (det, ra, dec, eid, mjd, img, hdu, outlier, wcs_text) in enumerate(rows, 1):  # loop over epochs (files)
        if not img or not Path(img).is_file():
            missing.append(int(eid))
            continue
        extra = {"TRACK": (int(track_id), "catdb track id"), "DETID": (int(det), "catdb detection id"),
                 "EXPID": (int(eid), "catdb exposure id"), "MJD-MID": (float(mjd), "[d] mid-exposure MJD (UTC)"),
                 "RA_DET": (float(ra), "[deg] detection RA (ICRS)"), "DEC_DET": (float(dec), "[deg] detection Dec"),
                 "OUTLIER": (bool(outlier), "rejected by the track's linear fit"),
                 "SRCIMG": (Path(img).name[-68:], "image cut from")}
        hdul = cutout_hdus(img, [ra], [dec], size_arcsec, hdu=hdu, extra=extra,
                           wcs_header=header_from_cards(wcs_text) if wcs_text else None)[0]
        if hdul is None:
            missing.append(int(eid))
            continue
        f = outdir / f"track{track_id}_{k:03d}_exp{eid}.fits"
        hdul.writeto(f, overwrite=True)
        written.append(str(f))
        stamps.append(hdul[0].data)
        labels.append(f"{mjd:.4f}")
    if not written:
        raise InputError(f"track {track_id}: none of its {len(rows)} images could be read "
                         f"(missing: exposures {missing[:5]})", keyword="track_id")
    png = cutout_strip_png(stamps, outdir / f"track{track_id}_strip.png", labels=labels,
                           title=f"track {track_id}: {len(stamps)} epochs, {size_arcsec:g}\" cutouts")
    return {"fits": written, "png": str(png), "missing": missing}
