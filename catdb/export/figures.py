"""The night report's figures, drawn from :func:`catdb.export.report_data.report_data`'s figure blocks.

:func:`draw` turns one figure block's ``data`` into a matplotlib Figure and :func:`png` into PNG
bytes; nothing here reads the database (the cutout strips and the coadd thumbnail read the
image files the data names).  One function per ``kind``: ``timeseries``, ``zeropoint_time``,
``residuals``, ``qa_boxplots``, ``sky``, ``cutout_strip``, ``lightcurve``, ``coadd``,
``rms_vs_mag``.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.visualization import ZScaleInterval
from astropy.wcs import WCS

from ..algorithms.cutout import cutout_strip_png, cutouts
from ..algorithms.robust import iqr_bounds
from ..ingest.headers import header_from_cards
from .diagnostics import rms_vs_mag_figure

from ..algorithms.lightcurve import fourier_power


def _fig(figsize=(7.5, 3.2)):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100, layout="constrained")


def _a(values) -> np.ndarray:
    """A list with None (unknown) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def png(fig) -> bytes:
    """A matplotlib Figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def draw(kind: str, data: dict):
    """The figure of a report figure block.

    Parameters
    ----------
    kind : str
        The block's ``kind``.
    data : dict
        The block's ``data``.

    Returns
    -------
    matplotlib.figure.Figure, or bytes (PNG) for ``cutout_strip``, or None when there is nothing
    to draw (a strip whose images are all unreadable).

    Raises
    ------
    KeyError
        Unknown kind.
    """
    return _KINDS[kind](data)


def render(kind: str, data: dict) -> bytes | None:
    """:func:`draw` as PNG bytes (None when there is nothing to draw)."""
    out = draw(kind, data)
    if out is None or isinstance(out, bytes):
        return out
    return png(out)


def time_axis(mjd):
    """x values and label: hours since the first epoch within ~2 days, else MJD."""
    mjd = np.asarray(mjd, dtype=float)
    if not np.isfinite(mjd).any():
        return np.arange(mjd.size, dtype=float), "exposure (no time)"
    t0 = np.nanmin(mjd)
    if np.nanmax(mjd) - t0 < 2:
        return (mjd - t0) * 24, f"hours since MJD {t0:.4f}"
    return mjd, "MJD"


def timeseries(d):
    """Zeropoint, FWHM and background against time; flagged exposures as red crosses."""
    mjd = _a(d["mjd"])
    t_h = (mjd - np.nanmin(mjd)) * 24
    bad = np.array(d["flagged"], dtype=bool)
    fig = _fig()
    axes = fig.subplots(1, 3)
    for ax, col, lab in zip(axes, ("zp", "fwhm", "bkg_median"),
                            ("zeropoint [mag]", "FWHM [arcsec]", "background median [adu]")):
        y = _a(d[col])
        if col == "zp":
            ax.errorbar(t_h, y, yerr=_a(d["zp_err"]), fmt="o", ms=3)
            ax.invert_yaxis()
        else:
            ax.plot(t_h, y, "o", ms=3)
        ax.plot(t_h[bad], y[bad], "rx", ms=8, label="flagged")
        ax.set_xlabel(f"hours since MJD {np.nanmin(mjd):.4f}")
        ax.set_ylabel(lab)
    if bad.any():
        axes[0].legend(fontsize=7)
    return fig


def zeropoint_time(d):
    """Zeropoint against time with error bars, one colour per band / method."""
    x, xlabel = time_axis(_a(d["mjd"]))
    zp, err = _a(d["zp"]), _a(d["zp_err"])
    key = np.array(d["key"], dtype=object)
    flagged = np.array(d["flagged"], dtype=bool)
    not_ok = ~np.array(d["ok"], dtype=bool)
    fig = _fig((7.5, 3.6))
    ax = fig.subplots()
    for k in sorted(set(key)):  # loop over band/method combinations
        m = key == k
        ax.errorbar(x[m], zp[m], yerr=np.nan_to_num(err[m]), fmt="o", ms=4, capsize=2, label=k)
    if not_ok.any():
        ax.plot(x[not_ok], zp[not_ok], "s", mfc="none", mec="k", ms=10, label="calibration not ok")
    if flagged.any():
        ax.plot(x[flagged], zp[flagged], "rx", ms=9, mew=1.5, label="flagged exposure")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("zeropoint [mag]")
    ax.legend(fontsize=7, title="band / method", title_fontsize=7)
    return fig


def residuals(d):
    """Small multiples of (reference - calibrated) against reference magnitude, one panel per exposure.

    The y range is +-1.15 x the 98th percentile of |residual| (clipped to 0.1..1 mag); points beyond
    it are triangles at the edge.  Red title: calibration not ok or exposure flagged.
    """
    from matplotlib.figure import Figure

    panels = d["panels"]
    data = [((_a(p["used"]["ref_mag"]), _a(p["used"]["residual"])),
             (_a(p["rejected"]["ref_mag"]), _a(p["rejected"]["residual"]))) for p in panels]
    all_y = np.concatenate([np.concatenate([u[1], r[1]]) for u, r in data])
    all_y = all_y[np.isfinite(all_y)]
    lim = float(np.clip(1.15 * np.percentile(np.abs(all_y), 98), 0.1, 1.0)) if all_y.size else 0.5
    ncols = min(6, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig = Figure(figsize=(2.15 * ncols + 0.6, 1.85 * nrows + 0.7), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
    for i, (ax, p, ((xu, yu), (xr, yr))) in enumerate(zip(axes, panels, data)):  # loop over panels
        ax.axhline(0, color="k", lw=0.8)
        for xx, yy, colour, marker in ((xu, yu, "C0", "."), (xr, yr, "C3", "x")):
            if xx.size == 0:
                continue
            inside = np.abs(yy) <= lim
            ax.plot(xx[inside], yy[inside], marker, color=colour, ms=3.5, ls="none")
            for sgn, m in ((1, "^"), (-1, "v")):  # beyond the axis: a triangle at the edge
                out = ~inside & (np.sign(yy) == sgn)
                if out.any():
                    ax.plot(xx[out], np.full(out.sum(), sgn * lim * 0.96), m, color=colour, ms=3.5, ls="none")
        rms = float(np.sqrt(np.nanmean(yu ** 2))) if yu.size else np.nan
        bad = (not p["ok"]) or p["flagged"]
        ax.set_title(f"#{p['exposure_id']} {p['band']} {p['method']}\nzp {p['zp']:.3f}\u00b1{(p['zp_err'] or 0):.3f}"
                     + (f" rms {rms:.3f}" if np.isfinite(rms) else ""), fontsize=7, color="C3" if bad else "k")
        if xu.size == 0 and xr.size == 0:  # e.g. the reference exposure of a relative calibration
            ax.text(0.5, 0.72, str(p["reason"] or "no stars stored"), ha="center", va="center",
                    transform=ax.transAxes, fontsize=7, color="0.3", bbox={"facecolor": "white", "edgecolor": "none"})
        ax.text(0.02, 0.03, f"{p['n_used']}/{p['n_matched']} used", transform=ax.transAxes, fontsize=6, color="0.3")
        ax.tick_params(labelsize=6)
        if i % ncols == 0:
            ax.set_ylabel("ref \u2212 cal [mag]", fontsize=7)
        if i >= len(panels) - ncols:
            ax.set_xlabel("reference mag", fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_ylim(-lim, lim)
    return fig


def qa_boxplots(d):
    """IQR box plots of one QA stage's metrics, one box per group (night), outliers marked.

    Boxes span Q1..Q3 with the median; whiskers reach the most extreme values inside the Tukey
    fences Q1 - k IQR and Q3 + k IQR (dashed red, ``k`` of the stage run, 1.5 by default;
    quartiles of :func:`catdb.algorithms.robust.iqr_bounds`, the rule of Automatic-SSOs).  Every
    exposure is a dot; values beyond a fence are orange and labelled with the exposure id; the
    exposures the stage flagged (``exposure_qa.is_outlier``) are red crosses, labelled.
    """
    from matplotlib.figure import Figure

    stage = d["stage"]
    eid = np.array(d["exposure_id"], dtype=np.int64)
    metric = np.array(d["metric"], dtype=object)
    val = _a(d["value"])
    out = np.array(d["is_outlier"], dtype=bool)
    grp = np.array(d["group"], dtype=object)
    kk = _a(d["k"])
    present = d["metrics"]
    fig = Figure(figsize=(max(2.3 * len(present), 6.0) + 0.4, 3.6), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(present), squeeze=False)).ravel()
    groups = sorted(set(grp.tolist()))
    for ax, (m, lab) in zip(axes, present):  # loop over metrics (<= 5)
        sel = (metric == m) & np.isfinite(val)
        stats, pos = [], []
        for j, g in enumerate(groups):  # loop over groups (nights)
            s = sel & (grp == g)
            if not s.any():
                continue
            v, k = val[s], float(kk[s][-1])  # k of the newest run in the group
            b = iqr_bounds(v, k=k)
            lo, hi = float(b.lower[0]), float(b.upper[0])
            inside = v[(v >= lo) & (v <= hi)]
            stats.append({"med": float(b.median[0]), "q1": float(b.q1[0]), "q3": float(b.q3[0]),
                          "whislo": float(inside.min()) if inside.size else float(b.q1[0]),
                          "whishi": float(inside.max()) if inside.size else float(b.q3[0]), "fliers": [],
                          "label": g})
            pos.append(j)
            ax.hlines([lo, hi], j - 0.4, j + 0.4, colors="C3", linestyles="--", lw=0.9)
            jit = j + np.linspace(-0.18, 0.18, v.size) if v.size > 1 else np.full(1, float(j))
            beyond = (v < lo) | (v > hi)
            flag = out[s]
            ax.plot(jit[~beyond & ~flag], v[~beyond & ~flag], "o", ms=3, color="0.35", alpha=0.8)
            ax.plot(jit[beyond & ~flag], v[beyond & ~flag], "o", ms=4.5, color="C1")
            ax.plot(jit[flag], v[flag], "x", ms=8, mew=2, color="C3")
            for xx, yy, e in zip(jit[beyond | flag], v[beyond | flag], eid[s][beyond | flag]):
                ax.annotate(str(e), (xx, yy), xytext=(4, 2), textcoords="offset points", fontsize=7,
                            color="C3")
        if stats:
            ax.bxp(stats, positions=pos, widths=0.6, showfliers=False,
                   medianprops={"color": "C0"}, boxprops={"color": "0.2"})
        ax.set_title(lab, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlim(-0.7, len(groups) - 0.3)
    where = f"night {groups[0]}" if len(groups) == 1 else f"{len(groups)} nights/groups"
    fig.suptitle(f"{stage}, one box per night or group ({where}); dashed red: fences Q1 \u2212 k IQR and "
                 f"\nQ3 + k IQR (k = {kk[-1]:g}); orange: beyond a fence; red x: flagged by the stage", fontsize=9)
    return fig


def sky(d):
    """Objects (grey) and candidate tracks (lines, labelled with their id) on the sky, RA increasing left."""
    from matplotlib.figure import Figure

    obj = _a([v for r in d["objects"] for v in r]).reshape(-1, 2)
    fig = Figure(figsize=(6.5, 6), dpi=100, layout="constrained")
    ax = fig.subplots()
    if len(obj):
        ax.plot(obj[:, 0], obj[:, 1], ".", ms=1.5, color="0.6", label=f"{len(obj)} objects")
    for t in d["tracks"]:  # loop over candidate tracks
        p = _a([v for r in t["radec"] for v in r]).reshape(-1, 2)
        ax.plot(p[:, 0], p[:, 1], "-o", ms=3, label=f"track {t['id']}")
        ax.annotate(str(t["id"]), p[0], fontsize=8)
    ax.invert_xaxis()
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_aspect(1 / np.cos(np.deg2rad(np.nanmedian(obj[:, 1]) if len(obj) else 0)))
    ax.legend(fontsize=7, markerscale=3)
    return fig


def stamps(epochs, size_arcsec: float = 30.0, centre=None):
    """Stamps cut from the epochs' images (:func:`catdb.algorithms.cutout.cutouts`).

    Parameters
    ----------
    epochs : list of dict
        ``ra``, ``dec`` [deg], ``mjd``, ``path``, ``hdu``, ``wcs_header`` (as
        :func:`catdb.export.report_data.track_epochs`): each stamp is cut from that HDU with the
        exposure's stored WCS, as ``catdb export cutouts`` does.
    size_arcsec : float
        Side of the square stamps [arcsec].
    centre : (float, float), optional
        ICRS RA, Dec [deg] of every stamp's centre (default each epoch's own position).

    Returns
    -------
    stamps : list of ndarray, each shape (s, s)
        Images missing or unreadable lose their stamp.
    labels : list of str
        The epochs' MJD (4 decimals).
    """
    out, labels = [], []
    for e in epochs:  # loop over epochs (image files)
        if not e["path"] or not Path(e["path"]).exists():
            continue
        ra, dec = centre if centre is not None else (e["ra"], e["dec"])
        try:
            wcs = header_from_cards(e["wcs_header"]) if e.get("wcs_header") else None
            out.append(cutouts(e["path"], [ra], [dec], size_arcsec, hdu=e.get("hdu"), wcs_header=wcs)[0])
        except Exception:  # noqa: BLE001 - a missing/unreadable image only loses its stamp
            continue
        labels.append(f"{e['mjd']:.4f}")
    return out, labels


def strip_png_bytes(images, labels, title) -> bytes:
    """:func:`catdb.algorithms.cutout.cutout_strip_png` of the stamps, as PNG bytes."""
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        cutout_strip_png(images, f.name, labels=labels, title=title)
        return Path(f.name).read_bytes()


def cutout_strip(d):
    """PNG bytes of a track's stamps, one per epoch, centred on its detections (None without a stamp)."""
    s, labels = stamps(d["epochs"], d["size_arcsec"])
    return strip_png_bytes(s, labels, f"track {d['track_id']}") if s else None


def lightcurve(d):
    """The light curve (calibrated magnitude against time) and its periodogram with the period the
    ``lightcurve`` stage stored (``lightcurve_period.period``, h) marked; nothing is re-fitted.

    The periodogram is :func:`catdb.algorithms.lightcurve.fourier_power` with one harmonic and one
    session: the generalised, error-weighted Lomb-Scargle power (Zechmeister & Kuerster 2009,
    A&A 496, 577; astropy's ``standard`` normalisation, VanderPlas 2018, ApJS 236, 16), unweighted
    when an error is missing."""
    t, mag, err = _a(d["mjd"]), _a(d["mag"]), _a(d["mag_err"])
    ok = np.isfinite(t) & np.isfinite(mag)
    t, mag, err = t[ok], mag[ok], err[ok]
    fig = _fig()
    ax1, ax2 = fig.subplots(1, 2)
    t0 = t.min()
    ax1.errorbar((t - t0) * 24, mag, yerr=err, fmt="o", ms=3)
    ax1.invert_yaxis()
    ax1.set_xlabel(f"hours since MJD {t0:.4f}")
    ax1.set_ylabel("calibrated mag")
    freq = np.linspace(0.5 / (np.ptp(t) or 1), 200, 4000)  # cycles/day
    w = 1.0 / err ** 2 if np.all(np.isfinite(err) & (err > 0)) else np.ones(t.size)
    power, _ = fourier_power(t, mag, w, np.zeros(t.size, dtype=np.int64), freq)
    ax2.plot(24 / freq, power)
    ax2.axvline(d["period"], color="r", ls="--", label=f"P = {d['period']:.2f} h (stored)")
    ax2.set_xscale("log")
    ax2.set_xlabel("period [h]")
    ax2.set_ylabel("Lomb-Scargle power")
    ax2.legend(fontsize=7)
    return fig


def coadd(d):
    """A zscale thumbnail (at most ~800 pixels a side) of the coadd with its objects circled."""
    data, header = fits.getdata(d["path"], header=True)
    step = max(1, max(data.shape) // 800)
    img = data[::step, ::step].astype(float)
    lo, hi = ZScaleInterval().get_limits(img[np.isfinite(img)])
    fig = _fig((6, 6))
    ax = fig.add_subplot()
    ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi)
    radec = _a([v for r in d["objects"] for v in r]).reshape(-1, 2)
    if len(radec):
        x, y = WCS(header).all_world2pix(radec[:, 0], radec[:, 1], 0)
        ax.scatter(x / step, y / step, s=8, facecolors="none", edgecolors="tab:orange", lw=0.5)
    ax.set_title(f"coadd of {d['n_inputs']} exposures (zscale)")
    ax.set_axis_off()
    return fig


def rms_vs_mag(d):
    """:func:`catdb.export.diagnostics.rms_vs_mag_figure` of the stats columns."""
    st = Table({k: _a(v) for k, v in d["columns"].items()})
    st.meta["n_exposures"] = d.get("n_exposures")
    return rms_vs_mag_figure(st)


_KINDS = {"timeseries": timeseries, "zeropoint_time": zeropoint_time, "residuals": residuals,
          "qa_boxplots": qa_boxplots, "sky": sky, "cutout_strip": cutout_strip, "lightcurve": lightcurve,
          "coadd": coadd, "rms_vs_mag": rms_vs_mag}
