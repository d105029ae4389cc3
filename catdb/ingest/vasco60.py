"""The VASCO60 data set: POSS-I tiles and detections from the VASCO project's CSV files.

The VASCO project (Villarroel et al. 2020, AJ 159, 8; Solano, Villarroel & Rodrigo 2022, MNRAS
515, 1380) publishes its SExtractor detections on the POSS-I red plates as
``source_extractor_final_filtered.csv`` and its survivors, with the plates' observation times, as
``survivors.csv``.  :func:`load_vasco60` loads them as exposures (one per tile) and detections,
so that the ``veto`` stage (:mod:`catdb.stages.veto`) can run a veto chain over them.
"""
from __future__ import annotations

import re

import numpy as np
from astropy.table import Table

from ..algorithms.sphere import separation_deg
from ..db.copy import copy_table
from ..db.provenance import fail_run, finish_run, start_run
from ..errors import InputError


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
    dist = separation_deg(ra, dec, centre[inv, 0], centre[inv, 1])  # great-circle distance (deg)
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
