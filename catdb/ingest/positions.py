"""Reader of user position lists (the ``positions`` targets of the ``forced`` stage)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import ascii

from ..errors import InputError

__all__ = ["read_positions"]


def read_positions(path) -> dict:
    """Read a user position list: CSV with ``ra``, ``dec`` (deg) and optional ``label`` columns.

    Column names are matched case-insensitively; other columns are ignored.

    Returns
    -------
    dict
        ``ra``, ``dec`` float arrays (n,), ``label`` object array (n,) (None where absent).

    Raises
    ------
    catdb.errors.InputError
        Missing file, unreadable CSV, missing ``ra``/``dec`` column (the columns found are
        listed), or a value that is not a number in range (the first bad row is named,
        1-based data row).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError("positions file not found (expected a CSV with columns ra,dec[,label])", path=path)
    try:
        t = ascii.read(str(path), format="csv", fast_reader=False)
    except Exception as exc:  # astropy raises several types for malformed CSV
        raise InputError(f"not a readable CSV file ({exc}); expected columns ra,dec[,label]", path=path) from None
    names = {c.lower().strip(): c for c in t.colnames}
    missing = [c for c in ("ra", "dec") if c not in names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}: expected ra,dec[,label] (degrees, ICRS); "
                         f"found {', '.join(t.colnames) or 'none'}", path=path, keyword=missing[0])
    out = {}
    for c in ("ra", "dec"):
        col = t[names[c]]
        try:
            a = np.asarray(np.ma.filled(col.astype(float), np.nan), dtype=float)
        except (TypeError, ValueError):
            a = np.array([_num(v) for v in np.asarray(col, dtype=str)], dtype=float)  # names the bad row below
        lim = (0.0, 360.0) if c == "ra" else (-90.0, 90.0)
        bad = ~np.isfinite(a) | (a < lim[0]) | (a > lim[1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{c} = {str(np.asarray(col)[i])!r} is not a number in [{lim[0]:g}, {lim[1]:g}] deg",
                             path=path, row=i + 1, keyword=names[c])
        out[c] = a
    if "label" in names:
        lab = np.ma.filled(t[names["label"]].astype(str), "")
        out["label"] = np.where(np.asarray(lab) == "", None, np.asarray(lab)).astype(object)
    else:
        out["label"] = np.full(len(t), None, dtype=object)
    return out


def _num(v):
    try:
        return float(v)
    except ValueError:
        return np.nan
