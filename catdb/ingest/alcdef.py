"""ALCDEF reader and database import: asteroid light curves in the Asteroid Lightcurve Data Exchange Format.

ALCDEF (Warner, Stephens & Harris 2011, MPB 38, 172; "Asteroid Lightcurve Data Exchange Format
(ALCDEF) Definition and Standards", v2.2.7, 2019, sect. 1.1 "Data structure" and 2 "Keywords and
data formatting") is a plain-text format of one or more light-curve *blocks*, one a session (one
object, one filter, one night)::

    STARTMETADATA
    KEYWORD=value            (one a line; COMMENT and the comparison-star keywords repeat)
    ...
    DELIMITER=PIPE           (or TAB: the separator of the DATA fields)
    ENDMETADATA
    DATA=JD|MAG|MAGERR|AIRMASS   (JD and MAG required; MAGERR and AIRMASS may be empty or absent)
    ...
    ENDDATA

:func:`read_alcdef` / :func:`parse_alcdef` return :class:`AlcdefSession` objects that keep every
metadata line (keyword and value *as text*, in file order, repeats included) and every DATA
value as written, so :func:`catdb.export.alcdef.format_alcdef` writes a file that reads back
identical (the round trip is exact).  Numbers are also parsed (``jd``, ``mag``, ``magerr``,
``airmass`` arrays; NaN where a field is empty or absent).

Validation (errors name the file, the line and the keyword, as :class:`catdb.errors.InputError`):
the block structure (STARTMETADATA / ENDMETADATA / DATA / ENDDATA in that order; a block ended by
the next STARTMETADATA or the end of the file without ENDDATA is accepted, as files exported by
the ALCDEF site before v2 are, and recorded in ``warnings``); the keywords catdb needs to
interpret a session (:data:`REQUIRED`); numbers where the standard has numbers
(:data:`NUMERIC`); the enumerated values (:data:`ENUMS`); SESSIONDATE ``YYYY-MM-DD`` and
SESSIONTIME ``HH:MM:SS``; every DATA line has 2 to 4 fields separated by the declared
delimiter (one trailing empty field, written by some programs, is allowed), a JD (> 2400000)
and a magnitude.  Keywords the standard has but catdb does not interpret (e.g. CONTACTINFO,
PUBLICATION, COMPNAME1) are kept as text, unchecked; lines longer than the standard's 255
characters are accepted with a warning.

:func:`import_alcdef` loads files into ``lightcurve_session`` / ``lightcurve_session_point``
(one transaction a file, COPY for the points, a ``stage_run`` of stage ``lightcurve-import``;
re-importing a file replaces its earlier sessions).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from psycopg import sql

from ..db.copy import copy_table
from ..db.provenance import fail_run, finish_run, start_run
from ..errors import InputError

__all__ = ["AlcdefSession", "REQUIRED", "NUMERIC", "ENUMS", "parse_alcdef", "read_alcdef", "import_alcdef",
           "load_sessions"]

#: keywords every block must carry (catdb cannot interpret a session without them): the object,
#: when, the photometric band, how the magnitudes were formed, and the DATA delimiter
REQUIRED = ("OBJECTNUMBER", "OBJECTNAME", "SESSIONDATE", "SESSIONTIME", "FILTER", "MAGBAND", "DIFFERMAGS",
            "STANDARD", "LTCAPP", "REDUCEDMAGS", "DELIMITER")
#: keywords whose value, when not empty, must be a number
NUMERIC = ("OBSLONGITUDE", "OBSLATITUDE", "PHASE", "PABL", "PABB", "LTCDAYS", "MAGADJUST", "UCORMAG", "CITARGET",
           "EXPOSURE")
#: keywords with enumerated values (when not empty)
ENUMS = {
    "DELIMITER": ("PIPE", "TAB"),
    "DIFFERMAGS": ("TRUE", "FALSE"),
    "CICORRECTION": ("TRUE", "FALSE"),
    "REVISEDDATA": ("TRUE", "FALSE"),
    "ALLOWSHARING": ("TRUE", "FALSE"),
    "SUBMITPDS": ("TRUE", "FALSE"),
    "STANDARD": ("NONE", "INTERNAL", "TRANSFORMED"),
    "LTCAPP": ("NONE", "AVERAGE", "POINT"),
    "REDUCEDMAGS": ("NONE", "AVERAGE", "POINT"),
    "EXPJD": ("START", "MID", "END"),
}
DELIMITERS = {"PIPE": "|", "TAB": "\t"}
MAX_LINE = 255
_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]*$")


@dataclass
class AlcdefSession:
    """One ALCDEF light-curve block (one session).

    Attributes
    ----------
    meta : list of (str, str)
        Every metadata line between STARTMETADATA and ENDMETADATA: keyword and value exactly
        as written (repeats such as COMMENT kept, in order).
    data_text : list of str
        Every DATA value (the text after ``DATA=``) as written.
    jd, mag, magerr, airmass : ndarray, shape (N,)
        The DATA fields as numbers (JD [d], mag, mag, airmass); NaN where empty or absent.
    path : str or None
        File read (None for a session built in memory).
    line : int or None
        Line of the STARTMETADATA (1-based).
    data_line : ndarray of int, shape (N,)
        Line of each DATA value.
    warnings : list of str
        Tolerated departures from the standard (missing ENDDATA, long lines).
    """

    meta: list
    data_text: list
    jd: np.ndarray
    mag: np.ndarray
    magerr: np.ndarray
    airmass: np.ndarray
    path: str | None = None
    line: int | None = None
    data_line: np.ndarray | None = None
    warnings: list = field(default_factory=list)

    def get(self, key, default=None):
        """Value of the first ``key`` line, stripped (``default`` when absent)."""
        for k, v in self.meta:
            if k == key:
                return v.strip()
        return default

    def get_all(self, key):
        """Values of every ``key`` line, stripped, in order (e.g. COMMENT)."""
        return [v.strip() for k, v in self.meta if k == key]

    @property
    def delimiter(self):
        """The DATA field separator (``|`` or a tab)."""
        return DELIMITERS[self.get("DELIMITER", "PIPE").upper()]

    @property
    def mjd(self):
        """``jd - 2400000.5`` [d]."""
        return self.jd - 2400000.5

    @property
    def object_label(self):
        """``'999 Zachia'``-style label (number and name, or the designation)."""
        num, name, des = self.get("OBJECTNUMBER", ""), self.get("OBJECTNAME", ""), self.get("MPCDESIG", "")
        parts = [p for p in ((num if num not in ("", "0") else ""), name or des) if p]
        return " ".join(parts)

    def __len__(self):
        return len(self.data_text)


def _float(text, path, row, keyword, what):
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"expected {what}, got {text.strip()!r}", path=path, row=row, keyword=keyword) from None
    if not np.isfinite(v):
        raise InputError(f"expected a finite {what}, got {text.strip()!r}", path=path, row=row, keyword=keyword)
    return v


def _check_meta(meta, meta_lines, path, start_line):
    """Required keywords, numbers, enumerations and date/time formats of one block."""
    first = {}
    for (k, v), ln in zip(meta, meta_lines):
        first.setdefault(k, (v.strip(), ln))
    for k in REQUIRED:
        if k not in first:
            raise InputError(f"required keyword {k} missing in the block starting here (ALCDEF needs "
                             f"{', '.join(REQUIRED)})", path=path, row=start_line, keyword=k)
    num, ln = first["OBJECTNUMBER"]
    if not re.fullmatch(r"\d+", num):
        raise InputError(f"expected an object number (0 for an unnumbered object), got {num!r}", path=path,
                         row=ln, keyword="OBJECTNUMBER")
    if not first["OBJECTNAME"][0] and not first.get("MPCDESIG", ("", 0))[0]:
        raise InputError("OBJECTNAME and MPCDESIG are both empty: the object is not named", path=path,
                         row=first["OBJECTNAME"][1], keyword="OBJECTNAME")
    for k in NUMERIC:
        if k in first and first[k][0]:
            _float(first[k][0], path, first[k][1], k, "a number")
    for k, allowed in ENUMS.items():
        if k in first and first[k][0] and first[k][0].upper() not in allowed:
            raise InputError(f"expected one of {', '.join(allowed)}, got {first[k][0]!r}", path=path,
                             row=first[k][1], keyword=k)
    d, ln = first["SESSIONDATE"]
    try:
        _dt.date.fromisoformat(d) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) else _dt.date.fromisoformat("x")
    except ValueError:
        raise InputError(f"expected a date YYYY-MM-DD, got {d!r}", path=path, row=ln, keyword="SESSIONDATE") from None
    tm, ln = first["SESSIONTIME"]
    try:
        _dt.time.fromisoformat(tm) if re.fullmatch(r"\d{2}:\d{2}:\d{2}", tm) else _dt.time.fromisoformat("x")
    except ValueError:
        raise InputError(f"expected a time HH:MM:SS, got {tm!r}", path=path, row=ln, keyword="SESSIONTIME") from None


def _parse_data(values, lines, delim, path):
    """The DATA fields of one block as arrays (JD, MAG required; MAGERR, AIRMASS optional)."""
    n = len(values)
    out = np.full((n, 4), np.nan)
    for i, (text, ln) in enumerate(zip(values, lines)):  # lines of a text file, parsed once each
        f = text.split(delim)
        if len(f) > 2 and f[-1].strip() == "":
            f = f[:-1]  # one trailing delimiter (written by some programs)
        if not 2 <= len(f) <= 4:
            name = "PIPE (|)" if delim == "|" else "TAB"
            raise InputError(f"expected 2 to 4 fields JD{delim}MAG[{delim}MAGERR[{delim}AIRMASS]] separated by the "
                             f"declared DELIMITER {name}, got {len(f)} in {text!r}", path=path, row=ln, keyword="DATA")
        for j, (fld, what) in enumerate(zip(f, ("a Julian Date", "a magnitude", "a magnitude error", "an airmass"))):
            if j >= 2 and fld.strip() == "":
                continue
            out[i, j] = _float(fld, path, ln, "DATA", what)
        if out[i, 0] <= 2400000.0:
            raise InputError(f"expected a Julian Date (> 2400000), got {f[0].strip()!r} (an MJD or a date?)",
                             path=path, row=ln, keyword="DATA")
    return out


def parse_alcdef(text: str, path=None) -> list[AlcdefSession]:
    """Parse ALCDEF text into sessions (see the module docstring for what is checked).

    Parameters
    ----------
    text : str
        File content (LF or CRLF line ends).
    path : str, optional
        Named in errors.

    Returns
    -------
    list of AlcdefSession
        In file order.

    Raises
    ------
    catdb.errors.InputError
        Structure, keyword or DATA errors, naming the line and the keyword; a file with no block.
    """
    sessions = []
    state = "out"  # out -> meta -> data -> out
    meta, meta_lines, values, vlines, warns, start = [], [], [], [], [], 0

    def close(ln_end, ended):
        if not values:
            raise InputError("light-curve block has no DATA lines", path=path, row=start, keyword="DATA")
        if not ended:
            warns.append(f"block starting at line {start}: no ENDDATA before line {ln_end} (accepted)")
        _check_meta(meta, meta_lines, path, start)
        delim_kw = next(v for k, v in meta if k == "DELIMITER").strip().upper()
        arr = _parse_data(values, vlines, DELIMITERS[delim_kw], path)
        sessions.append(AlcdefSession(meta=list(meta), data_text=list(values), jd=arr[:, 0], mag=arr[:, 1],
                                      magerr=arr[:, 2], airmass=arr[:, 3], path=None if path is None else str(path),
                                      line=start, data_line=np.asarray(vlines), warnings=list(warns)))

    lines = text.splitlines()
    for ln, raw in enumerate(lines, start=1):  # the file's lines, once
        line = raw.rstrip("\r\n")
        if len(line) > MAX_LINE:
            warns.append(f"line {ln} is {len(line)} characters long (ALCDEF allows {MAX_LINE})")
        word = line.strip()
        if state == "data" and word == "STARTMETADATA":
            close(ln, False)
            state = "out"
        if word == "":
            continue
        if state == "out":
            if word != "STARTMETADATA":
                raise InputError(f"expected STARTMETADATA (start of a light-curve block), got {line[:40]!r}",
                                 path=path, row=ln, keyword=line.split("=", 1)[0][:20])
            state, meta, meta_lines, values, vlines, warns, start = "meta", [], [], [], [], [], ln
        elif state == "meta":
            if word == "ENDMETADATA":
                state = "data"
            elif word in ("STARTMETADATA", "ENDDATA") or line.startswith("DATA="):
                raise InputError(f"{word.split('=')[0]} inside the metadata of the block starting at line {start} "
                                 "(expected ENDMETADATA first)", path=path, row=ln, keyword=word.split("=")[0])
            else:
                key, eq, value = line.partition("=")
                if not eq or not _KEY_RE.match(key.strip()):
                    raise InputError(f"expected KEYWORD=value (upper-case keyword), got {line[:60]!r}", path=path,
                                     row=ln, keyword=key.strip()[:20] or None)
                meta.append((key.strip(), value))
                meta_lines.append(ln)
        else:  # data
            if word == "ENDDATA":
                close(ln, True)
                state = "out"
            elif line.startswith("DATA="):
                values.append(line[5:])
                vlines.append(ln)
            else:
                raise InputError(f"expected DATA=... or ENDDATA after ENDMETADATA, got {line[:40]!r}", path=path,
                                 row=ln, keyword=line.split("=", 1)[0][:20])
    if state == "meta":
        raise InputError("file ends inside a metadata block (no ENDMETADATA)", path=path, row=start,
                         keyword="ENDMETADATA")
    if state == "data":
        close(len(lines), False)
    if not sessions:
        raise InputError("no light-curve block (STARTMETADATA ... ENDDATA) in the file", path=path,
                         keyword="STARTMETADATA")
    return sessions


def read_alcdef(path) -> list[AlcdefSession]:
    """Read an ALCDEF file (ASCII/UTF-8; LF or CRLF); see :func:`parse_alcdef`.

    Raises
    ------
    catdb.errors.InputError
        Unreadable file or invalid content (the message names the file, line and keyword).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=p) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # older files; ALCDEF is ASCII
    return parse_alcdef(text, path=str(p))


# ---------------------------------------------------------------------------------------------- database
def _num(s, key):
    v = s.get(key)
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:  # pragma: no cover - validated by the reader
        return None


#: lightcurve_session columns written by the import and their SQL types (for unnest)
_SESSION_TYPES = {
    "block": "integer", "line": "integer", "object_number": "integer", "object_name": "text", "mpc_desig": "text",
    "session_date": "date", "session_time": "time", "filter": "text", "mag_band": "text", "observers": "text",
    "contact_name": "text", "mpc_code": "text", "obs_longitude": "double precision",
    "obs_latitude": "double precision", "differ_mags": "boolean", "standard": "text", "ltc_app": "text",
    "ltc_type": "text", "ltc_days": "double precision", "reduced_mags": "text", "ucor_mag": "double precision",
    "mag_adjust": "double precision", "phase_angle": "double precision", "pabl": "double precision",
    "pabb": "double precision", "lcblockid": "text", "n_points": "integer", "jd_first": "double precision",
    "jd_last": "double precision", "meta": "jsonb",
}


def _session_row(s: AlcdefSession, block: int) -> dict:
    num = s.get("OBJECTNUMBER")
    dm = s.get("DIFFERMAGS")
    tm = s.get("SESSIONTIME")
    jd = s.jd
    return {
        "block": block, "line": s.line or 0, "object_number": int(num) if num and num.isdigit() else None,
        "object_name": s.get("OBJECTNAME") or None, "mpc_desig": s.get("MPCDESIG") or None,
        "session_date": s.get("SESSIONDATE"), "session_time": tm or None, "filter": s.get("FILTER") or None,
        "mag_band": s.get("MAGBAND") or None, "observers": s.get("OBSERVERS") or None,
        "contact_name": s.get("CONTACTNAME") or None, "mpc_code": s.get("MPCCODE") or None,
        "obs_longitude": _num(s, "OBSLONGITUDE"), "obs_latitude": _num(s, "OBSLATITUDE"),
        "differ_mags": None if not dm else dm.upper() == "TRUE", "standard": s.get("STANDARD") or None,
        "ltc_app": s.get("LTCAPP") or None, "ltc_type": s.get("LTCTYPE") or None, "ltc_days": _num(s, "LTCDAYS"),
        "reduced_mags": s.get("REDUCEDMAGS") or None, "ucor_mag": _num(s, "UCORMAG"),
        "mag_adjust": _num(s, "MAGADJUST"), "phase_angle": _num(s, "PHASE"), "pabl": _num(s, "PABL"),
        "pabb": _num(s, "PABB"), "lcblockid": s.get("LCBLOCKID") or None, "n_points": len(s),
        "jd_first": float(np.min(jd)), "jd_last": float(np.max(jd)),
        "meta": json.dumps([[k, v] for k, v in s.meta]),
    }


def import_alcdef(conn, paths, *, progress=None) -> dict:
    """Import ALCDEF files into ``lightcurve_session`` / ``lightcurve_session_point``.

    One ``stage_run`` (stage ``lightcurve-import``, params: the files) for the call; one
    transaction a file (a bad file leaves nothing of itself and the others are still
    imported); the points are written with COPY.  A file imported before (the same absolute
    path, or the same SHA-256 content) has its earlier sessions deleted first, so re-importing
    replaces rather than duplicates.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in autocommit.
    paths : sequence of path
    progress : callable, optional
        Called with ``(path, result_dict)`` after each file.

    Returns
    -------
    dict
        ``run_id``, ``files`` (per file: ``sessions``, ``points``, ``replaced`` sessions,
        ``session_ids``, ``warnings``, or ``error``), ``sessions``, ``points``, ``failed``.
    """
    paths = [str(Path(p).resolve()) for p in paths]
    run_id = start_run(conn, "lightcurve-import", {"files": paths})
    files, n_s, n_p, failed = {}, 0, 0, 0
    try:
        for p in paths:  # one transaction a file
            try:
                sessions = read_alcdef(p)
                sha = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                with conn.transaction():
                    replaced = conn.execute(
                        "DELETE FROM lightcurve_session WHERE source_path = %s OR source_sha256 = %s",
                        (p, sha)).rowcount
                    rows = [_session_row(s, i + 1) for i, s in enumerate(sessions)]
                    # the sessions in one INSERT ... SELECT FROM unnest (a column an array), the points by COPY
                    q = sql.SQL("INSERT INTO lightcurve_session (source_path, source_sha256, stage_run_id, {cols}) "
                                "SELECT %s, %s, %s, * FROM unnest({arrays}) RETURNING id, block").format(
                        cols=sql.SQL(", ").join(sql.Identifier(c) for c in _SESSION_TYPES),
                        arrays=sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t))
                                                  for t in _SESSION_TYPES.values()))
                    got = dict((b, i) for i, b in conn.execute(
                        q, (p, sha, run_id, *[[r[c] for r in rows] for c in _SESSION_TYPES])).fetchall())
                    ids = [got[b] for b in range(1, len(rows) + 1)]
                    sid = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in zip(ids, sessions)])
                    seq = np.concatenate([np.arange(1, len(s) + 1, dtype=np.int64) for s in sessions])
                    jd = np.concatenate([s.jd for s in sessions])
                    npts = copy_table(conn, "lightcurve_session_point", {
                        "session_id": sid, "seq": seq, "jd": jd, "mjd": jd - 2400000.5,
                        "mag": np.concatenate([s.mag for s in sessions]),
                        "mag_err": np.concatenate([s.magerr for s in sessions]),
                        "airmass": np.concatenate([s.airmass for s in sessions]),
                        "data_text": np.array([v for s in sessions for v in s.data_text], dtype=object)})
                res = {"sessions": len(ids), "points": int(npts), "replaced": int(replaced), "session_ids": ids,
                       "warnings": [w for s in sessions for w in s.warnings]}
                n_s += len(ids)
                n_p += int(npts)
            except InputError as exc:
                res = {"error": str(exc)}
                failed += 1
            files[p] = res
            if progress:
                progress(p, res)
        with conn.transaction():
            finish_run(conn, run_id, counts={"sessions": n_s, "points": n_p, "failed": failed, "files": files},
                       status="ok" if not failed else ("failed" if failed == len(paths) else "ok"),
                       error=None if not failed else f"{failed} file(s) not imported")
    except Exception as exc:
        fail_run(conn, run_id, exc)
        raise
    return {"run_id": run_id, "files": files, "sessions": n_s, "points": n_p, "failed": failed}


def load_sessions(conn, session_ids=None, object_=None):
    """Imported sessions back from the database as :class:`AlcdefSession` objects.

    Parameters
    ----------
    conn : psycopg.Connection
    session_ids : sequence of int, optional
    object_ : str, optional
        Object number, name or designation (``'999'``, ``'Zachia'``, ``'1923 NW'``, ``'999 Zachia'``);
        every imported session of that object.

    Returns
    -------
    ids : list of int
    sessions : list of AlcdefSession
        Ordered by first JD; ``path`` is the imported file, ``line`` its STARTMETADATA line.

    Raises
    ------
    catdb.errors.InputError
        Neither or both selections given, or nothing found.
    """
    if (session_ids is None) == (object_ is None):
        raise InputError("give session ids or an object", keyword="session")
    if session_ids is not None:
        ids = [int(i) for i in session_ids]
        rows = conn.execute("SELECT id, meta, source_path, line FROM lightcurve_session WHERE id = ANY(%s) "
                            "ORDER BY jd_first", (ids,)).fetchall()
        missing = sorted(set(ids) - {r[0] for r in rows})
        if missing:
            raise InputError(f"no imported light-curve session {missing[0]} (catdb lightcurve sessions lists them)",
                             keyword="session")
    else:
        o = str(object_).strip()
        m = re.fullmatch(r"\(?(\d+)\)?(?:\s+(.+))?", o)
        if m:
            cond, args = "object_number = %s", (int(m.group(1)),)
        else:
            cond, args = "(lower(object_name) = lower(%s) OR lower(mpc_desig) = lower(%s))", (o, o)
        rows = conn.execute(f"SELECT id, meta, source_path, line FROM lightcurve_session WHERE {cond} "
                            "ORDER BY jd_first", args).fetchall()
        if not rows:
            raise InputError(f"no imported light-curve session of object {o!r} (catdb lightcurve import FILE)",
                             keyword="object")
    ids = [r[0] for r in rows]
    pts = conn.execute("SELECT session_id, jd, mag, mag_err, airmass, data_text FROM lightcurve_session_point "
                       "WHERE session_id = ANY(%s) ORDER BY session_id, seq", (ids,)).fetchall()
    sid = np.array([p[0] for p in pts], dtype=np.int64)
    vals = np.array([p[1:5] for p in pts], dtype=float) if pts else np.empty((0, 4))
    texts = np.array([p[5] for p in pts], dtype=object)
    sessions = []
    for i, meta, path, line in rows:  # few sessions
        m = sid == i
        sessions.append(AlcdefSession(meta=[(k, v) for k, v in meta], data_text=list(texts[m]), jd=vals[m, 0],
                                      mag=vals[m, 1], magerr=vals[m, 2], airmass=vals[m, 3], path=path, line=line))
    return ids, sessions
