"""ALCDEF writer: sessions to the Asteroid Lightcurve Data Exchange Format, and catdb light curves as ALCDEF.

:func:`format_alcdef` / :func:`write_alcdef` write :class:`catdb.ingest.alcdef.AlcdefSession`
objects: every metadata line and every DATA value as the session holds them (text), so a file
read by :func:`catdb.ingest.alcdef.read_alcdef` and written again reads back identical (and a
file written by catdb is reproduced byte for byte).  Each block is ``STARTMETADATA``, the
metadata lines, ``ENDMETADATA``, the ``DATA=`` lines, ``ENDDATA`` (ALCDEF standard v2.2.7
sect. 1.1; a block the reader accepted without ENDDATA gets one).

:func:`lightcurve_sessions` builds sessions from catdb's own data (a track's or an object's
light curve, :func:`catdb.export.lightcurve.lightcurve`): one session per observing night and
filter.  The metadata are only what catdb knows:

* OBJECTNUMBER / OBJECTNAME / MPCDESIG: ``object_name`` given by the user, else the track's
  identification (``track.skybot_name`` / ``designation``), else the exposures' ``OBJECT``
  header (a COMMENT says so); ``'5945 Roachapproach'`` -> number 5945, name Roachapproach;
  a name without a number -> OBJECTNUMBER=0 with the name as MPCDESIG too.  No name: an error.
* SESSIONDATE / SESSIONTIME: UT of the session's middle; MPCCODE, OBSLONGITUDE, OBSLATITUDE:
  from the exposures (omitted when unknown); FILTER: the exposures' filter; MAGBAND: their band.
* DIFFERMAGS=FALSE (target magnitudes, not target minus comparison); STANDARD=INTERNAL when
  every point is calibrated (catdb's zeropoints: an internal system, catdb does not claim a
  transformation to a standard system), NONE for instrumental magnitudes; LTCAPP=NONE and
  REDUCEDMAGS=NONE (times as observed, magnitudes not reduced); EXPJD=MID (``mjd_mid``);
  EXPOSURE when every exposure of the session has the same time.
* CONTACTNAME, CONTACTINFO, OBSERVERS only when given (``contact``); nothing is invented.
* DELIMITER=PIPE; ``DATA=JD|MAG|MAGERR|AIRMASS`` (JD = MJD + 2400000.5, 6 decimals; magnitude
  and error 4 decimals; airmass 3; an unknown airmass is left empty).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.time import Time

from ..errors import InputError
from ..ingest.alcdef import AlcdefSession, load_sessions, parse_alcdef
from .lightcurve import choose_points, lightcurve

__all__ = ["format_alcdef", "write_alcdef", "lightcurve_sessions", "export_lightcurve_alcdef"]


def format_alcdef(sessions, newline="\n") -> str:
    """ALCDEF text of ``sessions`` (each: metadata lines and DATA values as held, as text).

    Parameters
    ----------
    sessions : sequence of AlcdefSession
    newline : str
        Line end (``"\\n"``; ``"\\r\\n"`` as the ALCDEF site writes).

    Raises
    ------
    catdb.errors.InputError
        A session without DATA, or a metadata keyword containing ``=``.
    """
    out = []
    for s in sessions:
        if not len(s):
            raise InputError("a session without DATA lines cannot be written as ALCDEF", keyword="DATA")
        out.append("STARTMETADATA")
        for k, v in s.meta:
            if "=" in k or not k:
                raise InputError(f"bad metadata keyword {k!r}", keyword=k)
            out.append(f"{k}={v}")
        out.append("ENDMETADATA")
        out.extend(f"DATA={v}" for v in s.data_text)
        out.append("ENDDATA")
    return newline.join(out) + newline


def write_alcdef(sessions, path, newline="\n"):
    """Write ``sessions`` to ``path`` (see :func:`format_alcdef`) and read it back to validate it.

    Returns
    -------
    list of AlcdefSession
        The sessions as read back from the written file.

    Raises
    ------
    catdb.errors.InputError
        The written file does not validate (the file is removed) or does not read back identical.
    """
    p = Path(path)
    text = format_alcdef(sessions, newline)
    p.write_text(text, newline="")
    try:
        back = parse_alcdef(text, path=str(p))
    except InputError:
        p.unlink(missing_ok=True)
        raise
    for a, b in zip(sessions, back):
        if list(map(tuple, a.meta)) != list(map(tuple, b.meta)) or list(a.data_text) != list(b.data_text):
            p.unlink(missing_ok=True)
            raise InputError("written ALCDEF does not read back identical", path=p)
    return back


def _split_name(name: str):
    """``'5945 Roachapproach'`` / ``'(5945) Roachapproach'`` -> (5945, 'Roachapproach', '');
    ``'2019 RB21'`` -> (0, '2019 RB21', '2019 RB21')."""
    s = " ".join(str(name).split())
    m = re.fullmatch(r"\(?(\d+)\)?\s+(.+)", s)
    if m and not re.fullmatch(r"[A-Z]{2}\d*", m.group(2)):  # '2019 RB21' is a designation, not number + name
        return int(m.group(1)), m.group(2), ""
    if re.fullmatch(r"\d+", s):
        return int(s), "", ""
    return 0, s, s


#: filter names that mean "no filter": ALCDEF writes them FILTER=C (clear)
_CLEAR = {"open", "clear", "none", "c", "cl", "l", "lum", "luminance", "unfiltered", "empty", "no filter"}
#: catdb band -> ALCDEF band code (Johnson-Cousins as they are, SDSS as SG/SR/SI/SZ)
_BANDS = {**{b: b for b in ("U", "B", "V", "R", "I", "J", "H", "K")},
          "u": "SU", "g": "SG", "r": "SR", "i": "SI", "z": "SZ"}


def alcdef_filter(name) -> str:
    """ALCDEF ``FILTER`` code of a header filter name: ``C`` for an open/clear/luminance position,
    a Johnson-Cousins or SDSS band code as :data:`_BANDS` gives it, else ``""`` (unknown)."""
    if name is None:
        return ""
    f = str(name).strip()
    if f.lower() in _CLEAR:
        return "C"
    return _BANDS.get(f, "")


def alcdef_magband(band) -> str:
    """ALCDEF ``MAGBAND`` of a catdb band (``""`` when the band is not a standard one, e.g. unfiltered)."""
    return "" if band is None else _BANDS.get(str(band).strip(), "")


def _jd_text(mjd):
    return np.char.mod("%.6f", np.asarray(mjd, float) + 2400000.5)


def lightcurve_sessions(conn, track=None, object=None, *, object_name=None, contact=None, source="auto",
                        exclude_flagged=False):
    """catdb's light curve of a track or object as ALCDEF sessions (one per night and filter).

    Parameters
    ----------
    conn : psycopg.Connection
    track, object : int
        The target (one of the two).
    object_name : str, optional
        The asteroid (``'5945 Roachapproach'``, ``'2019 RB21'``); default from the track's
        identification or the exposures' OBJECT.
    contact : dict, optional
        ``CONTACTNAME``, ``CONTACTINFO``, ``OBSERVERS`` values to write (nothing when absent).
    source : {'auto', 'forced', 'detection'}
        Points used (:func:`catdb.export.lightcurve.choose_points`).
    exclude_flagged : bool
        Leave out the points of exposures a QA stage flagged (``quality_flags != 0``: clouds,
        background outliers, ...) and flagged forced measurements (edge, saturated, masked, bad
        background), as the ``lightcurve`` stage does; a COMMENT line says how many.

    Returns
    -------
    list of AlcdefSession

    Raises
    ------
    catdb.errors.InputError
        No such target, no points, or no name for the object.
    """
    kind, tid = ("track", track) if track is not None else ("object", object)
    t = lightcurve(conn, **{kind: tid})
    pts, used = choose_points(t, source)
    ok = np.isfinite(np.asarray(pts["mjd"], float)) & np.isfinite(np.asarray(pts["mag"], float))
    comments = []
    if exclude_flagged:
        # as the lightcurve stage: forced flag 8 (no zeropoint) is what 'calibrated' says already
        forced = np.asarray(pts["source"]) == "forced"
        good = (np.asarray(pts["quality_flags"]) == 0) & ~(forced & ((np.asarray(pts["flags"]) & ~8) != 0))
        n_flagged = int((ok & ~good).sum())
        ok &= good
        if n_flagged:
            comments.append(f"{n_flagged} points of exposures flagged by catdb's QA (quality_flags) or with "
                            "flagged photometry left out")
    pts = pts[ok]
    if len(pts) == 0:
        raise InputError(f"{kind} {tid} has no magnitudes to export", keyword="target")
    exp_ids = [int(i) for i in np.unique(np.asarray(pts["exposure_id"]))]
    rows = conn.execute("SELECT id, night, filter, band, observatory_code, site_lon, site_lat, airmass, exptime, "
                        "object FROM exposure WHERE id = ANY(%s)", (exp_ids,)).fetchall()
    ex = {r[0]: r[1:] for r in rows}
    name = object_name
    if name is None and kind == "track":
        r = conn.execute("SELECT skybot_name, designation FROM track WHERE id = %s", (tid,)).fetchone()
        name = (r[0] or r[1]) if r else None
        if name:
            comments.append(f"Object identified by catdb (track {tid}: SkyBoT or user designation)")
    if name is None:
        objs = {ex[i][8] for i in exp_ids if ex[i][8]}
        if len(objs) == 1:
            name = objs.pop()
            comments.append("OBJECTNAME from the exposures' OBJECT header")
    if not name:
        raise InputError(f"{kind} {tid}: no object name known (no SkyBoT identification, no single OBJECT "
                         "header); give --object-name", keyword="object_name")
    number, oname, desig = _split_name(name)
    eid = np.asarray(pts["exposure_id"], dtype=np.int64)
    night = np.array([str(ex[i][0]) if ex[i][0] is not None else "" for i in eid])
    filt = np.array([ex[i][1] or "" for i in eid])
    keys = np.char.add(np.char.add(night, "\x00"), filt)
    sessions = []
    for key in sorted(set(keys.tolist()), key=lambda k: float(np.min(np.asarray(pts["mjd"])[keys == k]))):
        m = keys == key  # one session a night and filter (few)
        mjd = np.asarray(pts["mjd"], float)[m]
        order = np.argsort(mjd)
        mjd = mjd[order]
        mag = np.asarray(pts["mag"], float)[m][order]
        err = np.asarray(pts["mag_err"], float)[m][order]
        e_ids = eid[m][order]
        info = [ex[i] for i in e_ids]
        am = np.array([np.nan if x[6] is None else x[6] for x in info], float)
        cal = bool(np.all(np.asarray(pts["calibrated"])[m]))
        mid = 0.5 * (mjd[0] + mjd[-1])
        iso = Time(mid, format="mjd", scale="utc").isot
        meta = [("OBJECTNUMBER", str(number)), ("OBJECTNAME", oname), ("MPCDESIG", desig),
                ("SESSIONDATE", iso[:10]), ("SESSIONTIME", iso[11:19])]
        for k in ("CONTACTNAME", "CONTACTINFO", "OBSERVERS"):
            if contact and contact.get(k):
                meta.append((k, str(contact[k])))
        codes = {x[3] for x in info if x[3]}
        if len(codes) == 1:
            meta.append(("MPCCODE", codes.pop()))
        lons = {round(float(x[4]), 5) for x in info if x[4] is not None}
        lats = {round(float(x[5]), 5) for x in info if x[5] is not None}
        if len(lons) == 1 and len(lats) == 1:
            lon = (lons.pop() + 180.0) % 360.0 - 180.0
            meta += [("OBSLONGITUDE", f"{lon:+.5f}"), ("OBSLATITUDE", f"{lats.pop():+.5f}")]
        bands = {x[2] for x in info if x[2]}
        band = np.asarray(pts["band"])[m]
        mb = {b for b in band.tolist() if b} if cal else bands
        magband = alcdef_magband(next(iter(mb))) if len(mb) == 1 else ""
        meta += [("FILTER", alcdef_filter(info[0][1])), ("MAGBAND", magband)]
        exps = {x[7] for x in info}
        if len(exps) == 1 and None not in exps:
            meta.append(("EXPOSURE", f"{float(exps.pop()):g}"))
        meta += [("EXPJD", "MID"), ("DIFFERMAGS", "FALSE"), ("STANDARD", "INTERNAL" if cal else "NONE"),
                 ("LTCAPP", "NONE"), ("REDUCEDMAGS", "NONE")]
        if not alcdef_filter(info[0][1]) or not magband:
            comments = comments + ["FILTER/MAGBAND left empty where catdb does not know them"]
        meta += [("COMMENT", c) for c in comments]
        meta += [("COMMENT", f"Exported by catdb from {kind} {tid} ({used} photometry, "
                             f"{'calibrated' if cal else 'instrumental'} magnitudes)"),
                 ("DELIMITER", "PIPE")]
        jd = _jd_text(mjd)
        mag_t = np.char.mod("%.4f", mag)
        err_t = np.where(np.isfinite(err), np.char.mod("%.4f", np.nan_to_num(err)), "")
        am_t = np.where(np.isfinite(am), np.char.mod("%.3f", np.nan_to_num(am)), "")
        data = np.char.add(np.char.add(np.char.add(np.char.add(np.char.add(np.char.add(jd, "|"), mag_t), "|"),
                                                   err_t), "|"), am_t)
        sessions.append(AlcdefSession(meta=meta, data_text=data.tolist(), jd=mjd + 2400000.5, mag=mag, magerr=err,
                                      airmass=am))
    return sessions


def export_lightcurve_alcdef(conn, path, *, track=None, object=None, session_ids=None, object_name=None,
                             contact=None, source="auto", exclude_flagged=False):
    """Write a light curve as ALCDEF and validate it by reading it back.

    Either catdb's own light curve of a ``track`` / ``object`` (:func:`lightcurve_sessions`) or
    imported sessions (``session_ids``, written back as imported).

    Returns
    -------
    list of AlcdefSession
        As read back from the written file.
    """
    if session_ids:
        _, sessions = load_sessions(conn, session_ids=session_ids)
    else:
        sessions = lightcurve_sessions(conn, track=track, object=object, object_name=object_name, contact=contact,
                                       source=source, exclude_flagged=exclude_flagged)
    return write_alcdef(sessions, path)
