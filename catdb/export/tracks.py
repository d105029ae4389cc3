"""Astrometry of mover tracks for the Minor Planet Center (80-column records or ADES PSV).

:func:`export_tracks` selects the tracks of one status (default the candidates of the
``movers`` stage) and their member detections (outliers of the fit excluded) with the
exposure's ``mjd_mid``, and writes them with :func:`catdb.export.mpc.format_mpc80` or
:func:`~catdb.export.mpc.format_ades_psv` (formats: MPC, "Format for optical astrometric
observations", https://minorplanetcenter.net/iau/info/OpticalObs.html; IAU ADES 2017).

Identification per track: ``track.designation`` when it is a number (``5945`` ->
permanent number) or a provisional designation (``2019 AB12``); otherwise a trkSub /
temporary designation ``<prefix><track id>`` (at most 7 characters, e.g. ``cdb0042``).
Magnitudes: ``mag_auto + zp`` with the zeropoint's band when the exposure has an ``ok``
zeropoint; without one the magnitude is left blank (the MPC takes calibrated magnitudes
only).  The observatory code is ``obscode`` when given, else each exposure's
``observatory_code``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .mpc import format_ades_psv, format_mpc80

_PROV = re.compile(r"^\d{4} [A-HJ-Y][A-HJ-Z]\d*$")

#: one-letter MPC band codes for common catalogue bands
_MPC_BAND = {"G": "G", "g": "g", "r": "r", "i": "i", "z": "z", "y": "y", "V": "V", "R": "R", "B": "B",
             "I": "I", "U": "U", "J": "J", "H": "H", "K": "K", "w": "w", "c": "c", "o": "o", "VR": "R"}


def _fetch(conn, status):
    rows = conn.execute(
        """SELECT t.id, t.designation, e.mjd_mid, d.ra, d.dec, d.ra_err, d.dec_err,
                  d.mag_auto + z.zp, z.band, d.magerr_auto, e.observatory_code, e.id
           FROM track t JOIN track_detection td ON td.track_id = t.id AND NOT td.outlier
           JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
           LEFT JOIN LATERAL (SELECT zp, band FROM zeropoint WHERE exposure_id = e.id AND ok
                              ORDER BY id DESC LIMIT 1) z ON true
           WHERE t.status = %s ORDER BY t.id, e.mjd_mid""", (status,)).fetchall()
    names = ("track_id", "designation", "mjd", "ra", "dec", "ra_err", "dec_err", "mag", "band", "magerr",
             "obscode", "exposure_id")
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    out = {}
    for k, v in zip(names, cols):
        if k in ("designation", "band", "obscode"):
            out[k] = np.array(v, dtype=object)
        else:
            out[k] = np.array(v, dtype=float)
    out["track_id"] = out["track_id"].astype(np.int64)
    out["exposure_id"] = out["exposure_id"].astype(np.int64)
    return out


def export_tracks(conn, path, fmt: str = "mpc80", *, status: str = "candidate", obscode: str | None = None,
                  prefix: str = "cdb", note2: str = "C", ast_cat: str = "", catalog_code: str = " ") -> dict:
    """Write the astrometry of tracks as MPC 80-column records or an ADES PSV file.

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or os.PathLike
        Output file (overwritten).
    fmt : {'mpc80', 'ades'}
        80-column records or ADES pipe-separated values.
    status : str
        Tracks with this ``track.status`` (default ``candidate``).
    obscode : str, optional
        MPC observatory code for every observation; default each exposure's
        ``observatory_code``.
    prefix : str
        Prefix of the temporary designation / trkSub of unidentified tracks, followed by the
        zero-padded track id; together at most 7 characters.
    note2 : str
        80-column note 2 (``C`` = CCD).
    ast_cat, catalog_code : str
        Astrometric catalogue for ADES ``astCat`` (e.g. ``Gaia2``) and the 80-column code
        (col 72, e.g. ``V`` for Gaia DR2).

    Returns
    -------
    dict
        ``tracks`` and ``observations`` written, ``path``.

    Raises
    ------
    InputError
        Unknown ``fmt``; no tracks of that status; an exposure without observatory code
        when ``obscode`` is not given (the exposure is named); a temporary designation that
        does not fit in 7 characters; several observatory codes in one ADES file.
    """
    if fmt not in ("mpc80", "ades"):
        raise InputError(f"fmt: expected 'mpc80' or 'ades', got {fmt!r}", keyword="fmt")
    d = _fetch(conn, status)
    n = d["mjd"].size
    if n == 0:
        raise InputError(f"no tracks with status {status!r} (run the movers stage; candidates have "
                         "status 'candidate')", keyword="status")
    if obscode:
        code = np.full(n, str(obscode), dtype=object)
    else:
        code = d["obscode"]
        missing = np.array([c is None or not str(c).strip() for c in code])
        if missing.any():
            raise InputError(f"exposure {int(d['exposure_id'][missing][0])} has no observatory_code: pass "
                             "obscode (MPC code, e.g. 688)", keyword="observatory_code")
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
    path = Path(path)
    if fmt == "mpc80":
        lines = format_mpc80(d["mjd"], d["ra"], d["dec"], number=np.array([int(x) if x else "" for x in number],
                                                                            dtype=object),
                             provid=np.where(trk != "", trk, provid).astype(object), mag=mag, band=band,
                             obscode=code, note2=note2, catalog=catalog_code)
        path.write_text("\n".join(lines) + "\n")
    else:
        codes = sorted(set(code.tolist()))
        if len(codes) != 1:
            raise InputError(f"ADES file for one observatory expected, tracks come from {codes}: pass obscode "
                             "or export per site", keyword="obscode")
        text = format_ades_psv(d["mjd"], d["ra"], d["dec"], stn=codes[0], perm_id=number, prov_id=provid,
                               trk_sub=trk, rms_ra=d["ra_err"], rms_dec=d["dec_err"], mag=mag,
                               rms_mag=np.where(np.isfinite(mag), d["magerr"], np.nan), band=band,
                               ast_cat=ast_cat)
        path.write_text(text)
    return {"tracks": int(np.unique(tid).size), "observations": int(n), "path": str(path)}
