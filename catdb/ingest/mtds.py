"""Reader for ``.mtds`` files of LCO's moving-target detector (mtdlink).

The detections it returns (RA/Dec in degrees, MJD) are the input of
:func:`catdb.algorithms.movers.find_movers`; ``tests/test_motion_movers.py`` compares
catdb's moving-object search with mtdlink's candidates this way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import InputError

__all__ = ["read_mtds"]

_MTDS_COLS = ("det_number", "frame_number", "sext_number", "jd_obs", "ra", "dec", "x", "y", "mag",
              "fwhm", "elong", "theta", "rmserr", "deltamu", "area", "score", "velocity",
              "sky_pos_angle", "pixels_frame", "streak_length")


def read_mtds(path):
    """Read a ``.mtds`` file of LCO's moving-target detector (mtdlink).

    Format (``DETSV2.0``, as read by LCOGT neoexchange
    ``photometrics/external_codes.py:read_mtds_file``): a version line, a
    line ``n / n`` with the number of frames, one ``filename JD`` line per
    frame, then one line of 20 columns per candidate and frame (``det_number
    frame_number sext_number jd_obs ra dec x y mag fwhm elong theta rmserr
    deltamu area score velocity sky_pos_angle pixels_frame streak_length``).
    RA is in **hours** (the motion recomputed from ``ra x 15`` matches the
    ``velocity`` column, deg/day); rows with ``sext_number == 0`` are frames
    where the candidate was not detected (mtdlink fills in its prediction).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    frames : astropy.table.Table
        ``frame_number`` (1-based), ``filename``, ``jd``, ``mjd``.
    detections : astropy.table.Table
        The 20 columns with ``ra`` converted to degrees, plus ``mjd`` and
        ``detected`` (``sext_number > 0``).

    Raises
    ------
    InputError
        On a wrong version line, a malformed frame line, a detection line
        without 20 numeric columns, or a row count that is not a multiple of
        the number of frames (the message names the file and line).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read mtds file: {exc}", path=path) from exc
    if not lines or not lines[0].startswith("DETSV"):
        raise InputError("expected a DETSV version line (mtdlink .mtds file)", path=path, row=1)
    try:
        n_frames = int(lines[1].split("/")[0])
    except (IndexError, ValueError):
        raise InputError("expected 'n / n' frame count", path=path, row=2) from None
    names, jds = [], []
    for i in range(n_frames):
        parts = lines[2 + i].split() if 2 + i < len(lines) else []
        try:
            names.append(parts[0])
            jds.append(float(parts[1]))
        except (IndexError, ValueError):
            raise InputError("expected 'filename JD' frame line", path=path, row=3 + i) from None
    frames = Table(dict(frame_number=np.arange(1, n_frames + 1), filename=names, jd=jds,
                        mjd=np.asarray(jds) - 2400000.5))
    body = [ln for ln in lines[2 + n_frames:]]
    rows = []
    for k, ln in enumerate(body):
        if not ln.strip():
            continue
        parts = ln.split()
        if len(parts) != 20:
            raise InputError(f"expected 20 columns, found {len(parts)}", path=path,
                             row=3 + n_frames + k)
        rows.append(parts)
    if rows:
        try:
            arr = np.array(rows, dtype=float)
        except ValueError as exc:
            raise InputError(f"non-numeric detection value ({exc})", path=path) from None
    else:
        arr = np.zeros((0, 20))
    if arr.shape[0] % max(n_frames, 1):
        raise InputError(f"{arr.shape[0]} detection lines is not a multiple of {n_frames} frames",
                         path=path)
    det = Table()
    for j, c in enumerate(_MTDS_COLS):
        det[c] = arr[:, j].astype(np.int64) if c in ("det_number", "frame_number", "sext_number",
                                                    "area") else arr[:, j]
    det["ra"] = det["ra"] * 15.0
    det["ra"].unit = det["dec"].unit = "deg"
    det["velocity"].unit = "deg / d"
    det["mjd"] = det["jd_obs"] - 2400000.5
    det["detected"] = det["sext_number"] > 0
    return frames, det
