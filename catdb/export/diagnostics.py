"""Photometric diagnostics: how flat are the light curves of constant stars?

:func:`rms_vs_mag` measures, for every object with forced photometry (or a given list), the RMS
of its calibrated magnitudes over the exposures against the median error the photometry
claims; :func:`binned_rms` reduces that to medians per magnitude bin and
:func:`plot_rms_vs_mag` draws the classic RMS-vs-magnitude diagram with the expected-noise
curve (as in the time-series photometry literature, e.g. Everett & Howell 2001, PASP 113,
1428, fig. 6; Hartman et al. 2004, AJ 128, 1761).  For non-variable stars the RMS follows the
expected noise when the errors (Poisson, background, read noise, zeropoint) are right and the
calibration (zeropoints per exposure) removes transparency and airmass changes; an excess at
the bright end shows the systematic floor (flat field, aperture losses with seeing,
zeropoint errors).

The light curves come from :func:`catdb.export.lightcurve.lightcurve` (view
``lightcurve_point``): forced photometry of objects, calibrated, unflagged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from ..algorithms.robust import group_median
from ..errors import InputError
from .lightcurve import lightcurve


def light_curve_stats(object_id, mag, mag_err):
    """Per-object mean, RMS and median error of magnitude series, all objects at once.

    Parameters
    ----------
    object_id : array_like of int, shape (n,)
        Object of each point.
    mag, mag_err : array_like of float, shape (n,)
        Calibrated magnitudes and their errors [mag]; points with a non-finite value are ignored.

    Returns
    -------
    astropy.table.Table
        One row per object (sorted by id): ``object_id``, ``n`` (points), ``mean_mag`` [mag]
        (unweighted mean), ``rms`` [mag] (standard deviation about the mean, ddof = 1),
        ``median_err`` [mag] (median of the points' errors: the expected RMS of a constant
        star), ``ratio`` (rms / median_err) and ``chi2_red`` (sum of ((mag - mean) / err)^2 over
        n - 1).

    Raises
    ------
    InputError
        Arrays of different lengths.
    """
    oid = np.asarray(object_id, dtype=np.int64)
    m = np.asarray(mag, dtype=float)
    e = np.asarray(mag_err, dtype=float)
    if not (oid.shape == m.shape == e.shape):
        raise InputError(f"object_id, mag, mag_err: expected arrays of one length, got {oid.shape}, {m.shape}, "
                         f"{e.shape}")
    ok = np.isfinite(m) & np.isfinite(e) & (e > 0)
    oid, m, e = oid[ok], m[ok], e[ok]
    ids, g = np.unique(oid, return_inverse=True)
    k = ids.size
    n = np.bincount(g, minlength=k)
    mean = np.bincount(g, m, minlength=k) / np.maximum(n, 1)
    dev = m - mean[g]
    ss = np.bincount(g, dev ** 2, minlength=k)
    chi = np.bincount(g, (dev / e) ** 2, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.where(n > 1, np.sqrt(ss / np.maximum(n - 1, 1)), np.nan)
        chi2 = np.where(n > 1, chi / np.maximum(n - 1, 1), np.nan)
    med = group_median(g, e, k)
    t = Table()
    t["object_id"] = ids
    t["n"] = n
    for name, val, unit, desc in (
            ("mean_mag", mean, "mag", "Mean calibrated magnitude"),
            ("rms", rms, "mag", "RMS of the calibrated magnitudes about their mean (ddof 1)"),
            ("median_err", med, "mag", "Median magnitude error: the RMS expected of a constant star"),
            ("ratio", rms / med, None, "rms / median_err"),
            ("chi2_red", chi2, None, "Reduced chi-square about the mean")):
        t[name] = val
        t[name].unit = unit
        t[name].description = desc
    return t


def rms_vs_mag(conn, object_ids=None, *, min_points: int = 5, clean_exposures: bool = False):
    """RMS of each object's calibrated forced-photometry light curve against its expected noise.

    Parameters
    ----------
    conn : psycopg.Connection
    object_ids : sequence of int, optional
        Objects; default every object with forced photometry.
    min_points : int
        Objects with fewer usable points are left out.
    clean_exposures : bool
        Use only exposures with ``quality_flags = 0``.

    Returns
    -------
    astropy.table.Table
        As :func:`light_curve_stats` (``object_id``, ``n``, ``mean_mag``, ``rms``,
        ``median_err``, ``ratio``, ``chi2_red``), sorted by ``mean_mag``.  Points used: forced
        photometry with a calibrated magnitude (an ok zeropoint) and ``flags = 0`` (not on an
        edge, saturated, masked, or with a bad background annulus).

    Raises
    ------
    InputError
        No object with forced photometry, an unknown object id, or ``min_points`` < 2.
    """
    if min_points < 2:
        raise InputError(f"min_points: an RMS needs at least 2 points, got {min_points}", keyword="min_points")
    if object_ids is None:
        object_ids = [r[0] for r in conn.execute(
            "SELECT DISTINCT object_id FROM forced_source WHERE object_id IS NOT NULL ORDER BY 1").fetchall()]
    if len(object_ids) == 0:
        raise InputError("no object has forced photometry: run the forced stage with objects=SQL first",
                         keyword="object_id")
    lc = lightcurve(conn, object=list(object_ids), source="forced")
    use = np.asarray(lc["calibrated"]) & (np.asarray(lc["flags"]) == 0) & np.isfinite(lc["mag"])
    if clean_exposures:
        use &= np.asarray(lc["quality_flags"]) == 0
    t = light_curve_stats(lc["target_id"][use], lc["mag"][use], lc["mag_err"][use])
    t = t[t["n"] >= min_points]
    t.sort("mean_mag")
    t.meta.update(n_exposures=int(np.unique(np.asarray(lc["exposure_id"])[use]).size))
    return t


def binned_rms(stats, width: float = 0.5, min_objects: int = 3):
    """Median RMS and median expected error of the objects in magnitude bins.

    Parameters
    ----------
    stats : astropy.table.Table
        From :func:`rms_vs_mag` / :func:`light_curve_stats`.
    width : float
        Bin width [mag]; bins start at a multiple of ``width``.
    min_objects : int
        Bins with fewer objects are left out.

    Returns
    -------
    astropy.table.Table
        ``mag_lo``, ``mag_hi`` [mag], ``n_objects``, ``median_rms``, ``median_err`` [mag] and
        ``ratio`` (median_rms / median_err) per bin, brightest first.

    Raises
    ------
    InputError
        ``width`` <= 0.
    """
    if not width > 0:
        raise InputError(f"width: expected a bin width > 0 mag, got {width}", keyword="width")
    m = np.asarray(stats["mean_mag"], dtype=float)
    ok = np.isfinite(m) & np.isfinite(np.asarray(stats["rms"], dtype=float))
    b = np.floor(m[ok] / width).astype(np.int64)
    out = Table(names=("mag_lo", "mag_hi", "n_objects", "median_rms", "median_err", "ratio"),
                dtype=(float, float, int, float, float, float))
    if b.size:
        bins, g = np.unique(b, return_inverse=True)
        n = np.bincount(g, minlength=bins.size)
        rms = group_median(g, np.asarray(stats["rms"], dtype=float)[ok], bins.size)
        err = group_median(g, np.asarray(stats["median_err"], dtype=float)[ok], bins.size)
        keep = n >= min_objects
        for lo, k, r, e in zip(bins[keep] * width, n[keep], rms[keep], err[keep]):
            out.add_row((lo, lo + width, k, r, e, r / e))
    for c in ("mag_lo", "mag_hi", "median_rms", "median_err"):
        out[c].unit = "mag"
    return out


def plot_rms_vs_mag(stats, path, *, width: float = 0.5, title: str | None = None):
    """RMS-vs-magnitude diagram as a PNG: objects, binned medians, and the expected-noise curve.

    Parameters
    ----------
    stats : astropy.table.Table
        From :func:`rms_vs_mag`.
    path : str or os.PathLike
        PNG file written.
    width : float
        Bin width of the medians [mag].
    title : str, optional

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    rms_vs_mag_figure(stats, width=width, title=title).savefig(path, dpi=100)
    return Path(path)


def rms_vs_mag_figure(stats, *, width: float = 0.5, title: str | None = None):
    """The RMS-vs-magnitude diagram of :func:`plot_rms_vs_mag` as a matplotlib Figure (not saved)."""
    from matplotlib.figure import Figure

    bins = binned_rms(stats, width, min_objects=1)
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(stats["mean_mag"], stats["rms"], s=6, color="0.55", label=f"objects ({len(stats)})")
    ax.scatter(stats["mean_mag"], stats["median_err"], s=2, color="tab:blue", alpha=0.4)
    if len(bins):
        c = 0.5 * (np.asarray(bins["mag_lo"]) + np.asarray(bins["mag_hi"]))
        ax.plot(c, bins["median_err"], "-", color="tab:blue", lw=1.5, label="expected noise (median error)")
        ax.plot(c, bins["median_rms"], "s", color="tab:red", ms=5, label=f"median RMS per {width:g} mag")
    ax.set_yscale("log")
    ax.set_xlabel("mean calibrated magnitude")
    ax.set_ylabel("RMS of the light curve (mag)")
    n_exp = stats.meta.get("n_exposures")
    ax.set_title(title or "forced photometry: RMS vs magnitude" + (f" ({n_exp} exposures)" if n_exp else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def latest_coadd(conn) -> dict | None:
    """The latest coadd and how flat the forced light curves of its objects are.

    Returns
    -------
    dict or None
        None without a coadd; else ``path``, ``n_inputs``, ``band``, ``run_id`` (the coadd's
        stage run), ``n_objects`` (its coadd objects), ``n_forced`` (of those, objects with forced
        photometry), ``stats`` (:func:`rms_vs_mag` of those objects, or None when there are none
        or none has enough usable points) and ``note`` (why ``stats`` is None, or None).
    """
    row = conn.execute(
        "SELECT p.path, cardinality(p.input_ids), p.band, p.stage_run_id FROM image_product p "
        "WHERE p.kind = 'coadd' ORDER BY p.id DESC LIMIT 1").fetchone()
    if not row:
        return None
    path, n_in, band, run = row
    n_obj = conn.execute("SELECT count(*) FROM object WHERE kind = 'coadd' AND stage_run_id = %s",
                         (run,)).fetchone()[0]
    ids = [r[0] for r in conn.execute(
        "SELECT DISTINCT f.object_id FROM forced_source f JOIN object o ON o.id = f.object_id "
        "WHERE o.kind = 'coadd' AND o.stage_run_id = %s ORDER BY 1", (run,)).fetchall()]
    out = dict(path=path, n_inputs=n_in, band=band, run_id=run, n_objects=n_obj, n_forced=len(ids),
               stats=None, note=None)
    if not ids:
        out["note"] = ("No forced photometry of the coadd objects yet "
                       "(catdb stage forced --param objects=\"kind = 'coadd'\").")
        return out
    try:
        st = rms_vs_mag(conn, ids)
    except InputError as e:
        out["note"] = str(e)
        return out
    if len(st):
        out["stats"] = st
    return out
