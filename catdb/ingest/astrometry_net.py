"""astrometry.net's ``solve-field`` (Lang et al. 2010, AJ 139, 1782): detection and a blind solve of a source list.

:func:`status` says whether ``solve-field`` and index files are installed, and which quad
scales the indexes cover: index series ``42xx``/``41xx``/``52xx``/``tycho2-NN`` are built with
quads of diameter ``2 * sqrt(2)**N`` to ``2 * sqrt(2)**(N+1)`` arcmin for scale number ``N`` (the
last two digits; astrometry.net documentation, "Getting index files"), and a field can be
solved only with quads smaller than it (:func:`field_fits_indexes`).

:func:`solve` runs ``solve-field`` on the pixel positions of a SExtractor FITS_LDAC catalogue
(``--x-column XWIN_IMAGE --y-column YWIN_IMAGE --sort-column FLUX_AUTO``), with the pointing
and scale as hints when known, and reads the ``.wcs`` it writes (TAN or TAN-SIP).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["INDEX_DIRS", "status", "index_scales", "field_fits_indexes", "solve"]

#: where Debian's astrometry-data-* packages and a default build put the index files
INDEX_DIRS = ("/usr/share/astrometry", "/usr/local/astrometry/data", "/usr/local/share/astrometry")


def index_scales(paths) -> list[int]:
    """Scale numbers N of index files (``index-4207.fits``, ``index-4207-03.fits``, ``index-tycho2-10...``)."""
    out = []
    for p in paths:
        name = Path(p).name
        m = re.match(r"index-(?:\d{2}(\d{2})(?:-\d+)?|[a-z0-9]+-(\d{1,2}))\b", name)
        if m:
            out.append(int(m.group(1) or m.group(2)))
    return sorted(set(out))


def field_fits_indexes(field_arcmin: float, scales) -> bool:
    """True when some index's smallest quads (``2 sqrt(2)**N`` arcmin) fit in a field of ``field_arcmin``."""
    return any(2.0 * np.sqrt(2.0) ** n <= field_arcmin for n in scales)


def status(field_arcmin: float | None = None) -> dict:
    """Whether astrometry.net can be used here.

    Returns
    -------
    dict
        ``installed`` (solve-field on PATH), ``indexes`` (index files found), ``scales``,
        ``usable`` (installed with indexes, and, given ``field_arcmin``, quads that fit the field),
        ``message`` (what a user should know).
    """
    exe = shutil.which(os.environ.get("CATDB_SOLVE_FIELD", "solve-field"))
    dirs = [d for d in ([os.environ["CATDB_ASTROMETRY_INDEX"]] if os.environ.get("CATDB_ASTROMETRY_INDEX") else [])
            + list(INDEX_DIRS) if os.path.isdir(d)]
    idx = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "index-*")))
    scales = index_scales(idx)
    if exe is None:
        return {"installed": False, "indexes": idx, "scales": scales, "usable": False,
                "message": "astrometry.net not installed (no solve-field on PATH): blind solving skipped"}
    if not idx:
        return {"installed": True, "indexes": [], "scales": [], "usable": False,
                "message": f"astrometry.net installed ({exe}) but no index files in {', '.join(INDEX_DIRS)}"}
    msg = f"astrometry.net {exe} with {len(idx)} index files (scales {scales})"
    usable = True
    if field_arcmin is not None and not field_fits_indexes(field_arcmin, scales):
        usable = False
        smallest = 2.0 * np.sqrt(2.0) ** min(scales)
        msg += (f": field {field_arcmin:.1f}' is smaller than the smallest installed quads "
                f"({smallest:.1f}'); install index files of smaller scale")
    return {"installed": True, "indexes": idx, "scales": scales, "usable": usable, "message": msg}


def solve(catalog_path, workdir, naxis, pointing: dict | None = None, timeout: float = 300.0) -> dict:
    """Blind-solve a FITS_LDAC source list with ``solve-field``.

    Parameters
    ----------
    catalog_path : path
        SExtractor FITS_LDAC (``XWIN_IMAGE``, ``YWIN_IMAGE``, ``FLUX_AUTO`` in ``LDAC_OBJECTS``).
    workdir : path
    naxis : (int, int)
        Image size.
    pointing : dict, optional
        ``ra``, ``dec`` (deg), ``pixscale`` (arcsec/pixel): search hints (radius 2 deg, scale +-20 %).

    Returns
    -------
    dict
        ``header`` (astropy Header of the solution, None when unsolved), ``reason``.
    """
    exe = shutil.which(os.environ.get("CATDB_SOLVE_FIELD", "solve-field"))
    if exe is None:
        return {"header": None, "reason": "solve-field not installed"}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with fits.open(catalog_path) as hl:
        t = hl["LDAC_OBJECTS"].data
        xy = fits.BinTableHDU.from_columns([
            fits.Column(name="X", format="1D", array=np.asarray(t["XWIN_IMAGE"], float)),
            fits.Column(name="Y", format="1D", array=np.asarray(t["YWIN_IMAGE"], float)),
            fits.Column(name="FLUX", format="1D", array=np.asarray(t["FLUX_AUTO"], float))])
    xyls = workdir / "sources.xyls"
    fits.HDUList([fits.PrimaryHDU(), xy]).writeto(xyls, overwrite=True)
    cmd = [exe, str(xyls), "--no-plots", "--overwrite", "--dir", str(workdir), "--width", str(int(naxis[0])),
           "--height", str(int(naxis[1])), "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
           "--new-fits", "none", "--cpulimit", str(int(timeout))]
    if pointing and pointing.get("ra") is not None:
        cmd += ["--ra", repr(float(pointing["ra"])), "--dec", repr(float(pointing["dec"])), "--radius", "2"]
    if pointing and pointing.get("pixscale"):
        s = float(pointing["pixscale"])
        cmd += ["--scale-units", "arcsecperpix", "--scale-low", repr(0.8 * s), "--scale-high", repr(1.2 * s)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return {"header": None, "reason": f"solve-field timed out after {timeout} s"}
    wcs = workdir / "sources.wcs"
    if res.returncode != 0 or not wcs.is_file():
        tail = " ".join(((res.stderr or "") + (res.stdout or "")).split()[-40:])
        return {"header": None, "reason": f"solve-field found no solution (exit {res.returncode}): {tail}"}
    return {"header": fits.getheader(wcs), "reason": ""}
