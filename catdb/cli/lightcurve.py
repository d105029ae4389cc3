"""``catdb lightcurve``, ``catdb period`` and ``catdb cutouts``: one track or object at a time.

Thin wrappers over :mod:`catdb.export.lightcurve` (points, light-time correction),
:mod:`catdb.export.tracks` (cutouts) and :mod:`catdb.algorithms.lightcurve` (Lomb-Scargle
period search and plots).  Times are MJD in days: ``mjd`` as observed (mid-exposure, UTC),
``mjd_lt`` light-time corrected when ``--light-time``/``--delta`` is given.  They read the
database in a read-only transaction.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..db.engine import connect
from ..errors import InputError

TARGET_HELP = "TARGET is 'track:ID', 'object:ID' or a bare track id."


def _reader(obj):
    return connect(obj["url"], read_only=True)


def _points(conn, target, light_time, delta, skybot_votable):
    from ..export.lightcurve import lightcurve, parse_target

    kind, tid = parse_target(target)
    t = lightcurve(conn, **{kind: tid}, light_time=light_time, delta_au=delta, skybot_votable=skybot_votable)
    if len(t) == 0:
        raise InputError(f"{kind} {tid} has no magnitudes (no forced photometry, no detections with mag_auto)",
                         keyword="target")
    return kind, tid, t


def _time_column(t):
    """``mjd_lt`` (light-time corrected) when present, else ``mjd`` (as observed)."""
    return "mjd_lt" if "mjd_lt" in t.colnames else "mjd"


_lt_options = [
    click.option("--light-time", is_flag=True,
                 help="Add mjd_lt = mjd - Delta/c, the light-time corrected epoch (days), and use it for the "
                      "plot and period (Delta: --delta, the track's skybot_delta, or its SkyBoT match)."),
    click.option("--delta", type=float, metavar="AU",
                 help="Geocentric distance [au] for the light-time correction (implies --light-time)."),
    click.option("--skybot-votable", type=click.Path(exists=True, dir_okay=False),
                 help="Saved SkyBoT response giving the distance of the track's SkyBoT object (offline)."),
]


def _lt(f):
    for opt in reversed(_lt_options):
        f = opt(f)
    return f


class _LightcurveGroup(click.Group):
    """``catdb lightcurve TARGET ...`` runs the hidden ``show`` command unless TARGET names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group("lightcurve", cls=_LightcurveGroup, epilog="""\b
Examples:
  catdb lightcurve track:503                      # print the table
  catdb lightcurve 503 -o lc.csv --png lc.png     # CSV (or .vot) and a plot
  catdb lightcurve 503 --light-time --delta 1.23  # adds mjd_lt, light-time corrected
  catdb lightcurve import ALCDEF_999_Zachia.txt   # ALCDEF sessions into the database
  catdb lightcurve sessions                       # the imported sessions
  catdb lightcurve period --object 999 --png fold.png""")
def command():
    """Light curves: show a track's or object's (TARGET), import ALCDEF files, period of imported sessions."""


@command.command("show", hidden=True, epilog="""\b
Examples:
  catdb lightcurve track:503                      # print the table
  catdb lightcurve 503 -o lc.csv --png lc.png     # CSV (or .vot) and a plot
  catdb lightcurve 503 --light-time --delta 1.23  # adds mjd_lt, light-time corrected""")
@click.argument("target")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the table: .csv, .vot/.xml (VOTable), .ecsv, .fits.")
@click.option("--png", type=click.Path(dir_okay=False), help="Plot magnitude against time as PNG.")
@_lt
@click.pass_obj
def show_command(obj, target, output, png, light_time, delta, skybot_votable):
    """Light curve of a track or object: MJD [d], calibrated magnitude, error, source (forced/detection).

    TARGET is 'track:ID', 'object:ID' or a bare track id.  Forced photometry rows come from
    the forced stage, detection rows from the track's (or object's) detections with the
    exposure's zeropoint (calibrated = false when the exposure has none).
    """
    with _reader(obj) as conn:
        kind, tid, t = _points(conn, target, light_time, delta, skybot_votable)
    if output:
        fmt = {".csv": "ascii.csv", ".vot": "votable", ".xml": "votable", ".ecsv": "ascii.ecsv",
               ".fits": "fits"}.get(Path(output).suffix.lower())
        if fmt is None:
            raise InputError("expected a .csv, .vot, .xml, .ecsv or .fits file name", path=output)
        t.write(output, format=fmt, overwrite=True)
        if not obj.get("quiet"):
            click.echo(f"wrote {len(t)} points of {kind} {tid} to {output}", err=True)
    else:
        click.echo("\n".join(t.pformat(max_lines=-1, max_width=-1)))
    if png:
        _plot_lc(t, png, f"{kind} {tid}")
        if not obj.get("quiet"):
            click.echo(f"wrote {png}", err=True)


def _plot_period(obj, res, png, label, fold, fap):
    """The folded light curve of a period search as PNG, titled ``label: P = ... h, folded on ...``."""
    from ..algorithms.lightcurve import plot_lightcurve

    plot_lightcurve(res, png, title=f"{label}: P = {res.period * 24:.4f} h, folded on {fold} "
                                    f"({res.rotation_period * 24:.4f} h), FAP {fap}")
    if not obj.get("quiet"):
        click.echo(f"wrote {png}", err=True)


def _plot_lc(t, path, title):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    tcol = _time_column(t)
    t0 = float(np.nanmin(t[tcol]))
    for src, fmt in (("forced", "o"), ("detection", "s")):
        m = np.asarray(t["source"]) == src
        if m.any():
            ax.errorbar((np.asarray(t[tcol])[m] - t0) * 24, np.asarray(t["mag"])[m],
                        yerr=np.asarray(t["mag_err"])[m], fmt=fmt, ms=3, lw=0.8, label=src)
    ax.invert_yaxis()
    ax.set_xlabel(f"hours since MJD {t0:.5f}" + (" (light-time corrected)" if tcol == "mjd_lt" else ""))
    ax.set_ylabel("magnitude" + ("" if np.all(t["calibrated"]) else " (partly instrumental)"))
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


@click.command("period", epilog="""\b
Examples:
  catdb period track:503 --png folded.png
  catdb period 503 --nterms 2 --max-period-h 12""")
@click.argument("target")
@click.option("--source", type=click.Choice(["auto", "forced", "detection"]), default="auto", show_default=True,
              help="Points searched: forced photometry when it has >= 5 points (auto), or one kind.")
@click.option("--nterms", type=click.IntRange(1, 6), default=1, show_default=True,
              help="Fourier terms of the Lomb-Scargle model.")
@click.option("--min-period-h", type=float, help="Shortest period searched [h] (default 2 x the median cadence).")
@click.option("--max-period-h", type=float, help="Longest period searched [h] (default the time span).")
@click.option("--fold", type=click.Choice(["2P", "P"]), default="2P", show_default=True,
              help="Fold the PNG on twice the best period (double-peaked asteroid light curve) or on it.")
@click.option("--png", type=click.Path(dir_okay=False), help="Phase-folded light curve as PNG.")
@_lt
@click.pass_obj
def period_command(obj, target, source, nterms, min_period_h, max_period_h, fold, png, light_time, delta,
                   skybot_votable):
    """Lomb-Scargle period of a track's or object's light curve, with P and 2P candidates.

    TARGET is 'track:ID', 'object:ID' or a bare track id.
    Generalised (floating-mean, error-weighted) Lomb-Scargle periodogram, or a Fourier series
    of NTERMS harmonics (Zechmeister & Kuerster 2009; VanderPlas 2018; Harris et al. 1989), peak
    refined beyond the grid; false-alarm probability of Baluev (2008) for nterms = 1, a
    permutation bootstrap otherwise; period error from the chi2 curvature (Horne & Baliunas
    1986 as a floor), the method printed.  An asteroid's light curve is
    usually double-peaked, so the rotation period is most often 2P (Harris et al. 1989).
    """
    from ..algorithms.lightcurve import period_search
    from ..export.lightcurve import choose_points

    with _reader(obj) as conn:
        kind, tid, t = _points(conn, target, light_time, delta, skybot_votable)
    pts, used = choose_points(t, source)
    mjd = np.asarray(pts[_time_column(t)], dtype=float)
    ok = np.isfinite(mjd) & np.isfinite(np.asarray(pts["mag"], dtype=float))
    if ok.sum() < 5:
        raise InputError(f"{kind} {tid}: {int(ok.sum())} {used} magnitudes, a period search needs at least 5",
                         keyword="target")
    if min_period_h is None:  # periods shorter than twice the cadence are not sampled (Nyquist)
        min_period_h = 2 * 24 * float(np.median(np.diff(np.unique(mjd[ok]))))
    if max_period_h is None:
        max_period_h = 24 * float(np.ptp(mjd[ok]))
    res = period_search(mjd, pts["mag"], pts["mag_err"], nterms=nterms, double_peaked=(fold == "2P"),
                        min_period=min_period_h / 24,
                        max_period=max_period_h / 24)
    p_h, e_h = res.period * 24, res.period_err * 24
    fap = "n/a" if not np.isfinite(res.fap) else f"{res.fap:.3g}"
    lines = [f"{kind} {tid}: {res.mjd.size} {used} points over {np.ptp(res.mjd) * 24:.2f} h"
             + (f", light-time corrected (delta {t.meta['delta_au']:.4f} au, {t.meta['delta_source']})"
                if "delta_au" in t.meta else ""),
             f"  best light-curve period P  = {p_h:.5f} +- {e_h:.5f} h  ({res.period_err_method}; peak HWHM "
             f"{res.peak_hwhm_period * 24:.4f} h, grid step {res.grid_step_period * 24:.5f} h, refined)",
             f"  double-peaked rotation 2P = {2 * p_h:.4f} +- {2 * e_h:.4f} h  (usual for asteroids)",
             f"  amplitude (peak to peak)  = {res.amplitude:.3f} mag,  FAP = {fap},  nterms = {nterms}",
             f"  FAP method: {res.fap_method}",
             f"  searched {min_period_h:.3f} h to {24 / res.frequency[0]:.3f} h"]
    click.echo("\n".join(lines))
    if png:
        _plot_period(obj, res, png, f"{kind} {tid}", fold, fap)


@click.command("cutouts", epilog="""\b
Examples:
  catdb cutouts --track 503 -o cutouts/
  catdb cutouts -o cutouts/ --size 40          # every candidate track""")
@click.option("--track", "tracks", type=int, multiple=True,
              help="Track id (repeatable; default every candidate track).")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Directory; each track's files go to OUTDIR/track<ID>/.")
@click.option("--size", type=float, default=30.0, show_default=True, help="Cutout side [arcsec].")
@click.pass_obj
def cutouts_command(obj, tracks, outdir, size):
    """FITS cutouts (with WCS) around each detection of candidate tracks, and a PNG strip per track.

    The report (catdb report) links them when they sit in a 'cutouts' directory beside it.
    """
    from ..export.tracks import track_cutouts

    with _reader(obj) as conn:
        ids = list(tracks) or [r[0] for r in conn.execute(
            "SELECT id FROM track WHERE status = 'candidate' ORDER BY id").fetchall()]
        if not ids:
            raise InputError("no candidate tracks (run the movers stage) and no --track given", keyword="track")
        for tid in ids:  # loop over tracks
            res = track_cutouts(conn, tid, Path(outdir) / f"track{tid}", size)
            if not obj.get("quiet"):
                click.echo(f"track {tid}: {len(res['fits'])} cutouts, strip {res['png']}"
                           + (f"; no image for exposures {res['missing']}" if res["missing"] else ""), err=True)


# ------------------------------------------------------------------------------------ imported (ALCDEF) light curves
@command.command("import", epilog="""\b
Examples:
  catdb lightcurve import ALCDEF_999_Zachia.txt
  catdb lightcurve import lcs/*.txt      # one transaction a file; re-importing replaces""")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_command(obj, files):
    """Import ALCDEF files (Asteroid Lightcurve Data Exchange Format) into lightcurve_session/_point.

    Each light-curve block is a session.  One transaction a file (a bad file is reported, with
    its line and keyword, and the others are imported); one stage_run for the call; a file
    imported before (same path or same content) has its sessions replaced.  Exit status 1
    when a file could not be imported.
    """
    from ..ingest.alcdef import import_alcdef

    def report(path, res):
        if "error" in res:
            click.echo(f"{path}: NOT imported: {res['error']}", err=True)
        elif not obj.get("quiet"):
            click.echo(f"{path}: {res['sessions']} sessions, {res['points']} points (ids "
                       f"{', '.join(map(str, res['session_ids']))})"
                       + (f", replaced {res['replaced']} earlier sessions" if res["replaced"] else "")
                       + "".join(f"\n  warning: {w}" for w in res["warnings"]), err=True)

    with connect(obj["url"]) as conn:
        res = import_alcdef(conn, list(files), progress=report)
    click.echo(f"imported {res['sessions']} sessions, {res['points']} points from {len(files) - res['failed']} of "
               f"{len(files)} files (stage_run {res['run_id']})")
    if res["failed"]:
        raise SystemExit(1)


@command.command("sessions")
@click.option("--object", "object_", help="Only this object (number, name or designation).")
@click.pass_obj
def sessions_command(obj, object_):
    """List the imported light-curve sessions: id, object, UT date, filter, band, points, file."""
    with _reader(obj) as conn:
        q = ("SELECT id, COALESCE(object_number::text, ''), COALESCE(object_name, mpc_desig, ''), session_date, "
             "session_time, COALESCE(filter, ''), COALESCE(mag_band, ''), standard, n_points, source_path, line "
             "FROM lightcurve_session")
        args = ()
        if object_:
            from ..ingest.alcdef import load_sessions

            ids, _ = load_sessions(conn, object_=object_)
            q, args = q + " WHERE id = ANY(%s)", (ids,)
        rows = conn.execute(q + " ORDER BY jd_first", args).fetchall()
    if not rows:
        click.echo("no imported light-curve sessions (catdb lightcurve import FILE)")
        return
    click.echo(f"{'id':>5} {'object':<24} {'date':<10} {'time':<8} {'filter':<6} {'band':<5} {'standard':<11} "
               f"{'points':>6}  file:line")
    for r in rows:
        click.echo(f"{r[0]:>5} {(r[1] + ' ' + r[2]).strip()[:24]:<24} {str(r[3]):<10} {str(r[4]):<8} {r[5]:<6} "
                   f"{r[6]:<5} {str(r[7]):<11} {r[8]:>6}  {r[9]}:{r[10]}")


def session_arrays(sessions, *, reduce="auto", light_time="auto"):
    """Times, magnitudes, errors and session labels of imported sessions for a period search.

    Parameters
    ----------
    sessions : sequence of AlcdefSession
    reduce : {'auto', 'no'}
        ``auto``: add UCORMAG (the session's correction to unit-distance magnitudes,
        -5 log10(r Delta)) where REDUCEDMAGS=NONE and UCORMAG is given, so sessions days apart
        compare (Harris & Lupishko 1989, Asteroids II, 39).
    light_time : {'auto', 'no'}
        ``auto``: add LTCDAYS to the times where LTCAPP=NONE and LTCDAYS is given.

    Returns
    -------
    mjd, mag, magerr : ndarray, shape (N,)
    session : ndarray of int, shape (N,)
    notes : list of str
        What was applied.
    """
    t, m, e, lab, notes = [], [], [], [], []
    n_red = n_ltc = 0
    for i, s in enumerate(sessions):  # few sessions
        mag = np.asarray(s.mag, float).copy()
        jd = np.asarray(s.jd, float).copy()
        uc, ltc = s.get("UCORMAG"), s.get("LTCDAYS")
        if reduce == "auto" and (s.get("REDUCEDMAGS") or "").upper() == "NONE" and uc:
            mag += float(uc)
            n_red += 1
        if light_time == "auto" and (s.get("LTCAPP") or "").upper() == "NONE" and ltc:
            jd += float(ltc)
            n_ltc += 1
        t.append(jd - 2400000.5)
        m.append(mag)
        e.append(np.asarray(s.magerr, float))
        lab.append(np.full(len(s), i))
    if n_red:
        notes.append(f"magnitudes reduced to unit distances with UCORMAG in {n_red} of {len(sessions)} sessions")
    if n_ltc:
        notes.append(f"times light-time corrected with LTCDAYS in {n_ltc} of {len(sessions)} sessions")
    return np.concatenate(t), np.concatenate(m), np.concatenate(e), np.concatenate(lab), notes


def common_system(sessions):
    """True when the sessions' magnitudes share one zero point: every session DIFFERMAGS=FALSE,
    STANDARD INTERNAL or TRANSFORMED, and one MAGBAND (else each session gets its own offset)."""
    return all((s.get("DIFFERMAGS") or "").upper() == "FALSE"
               and (s.get("STANDARD") or "").upper() in ("INTERNAL", "TRANSFORMED") for s in sessions) \
        and len({(s.get("MAGBAND") or "").upper() for s in sessions}) == 1


@command.command("period", epilog="""\b
Examples:
  catdb lightcurve period --object 999 --png fold.png
  catdb lightcurve period --session 3 --session 4 --nterms 3 --fold P""")
@click.option("--session", "session_ids", type=int, multiple=True, help="Imported session id (repeatable).")
@click.option("--object", "object_", help="Every imported session of this object (number, name or designation).")
@click.option("--nterms", type=click.IntRange(1, 6), default=1, show_default=True,
              help="Fourier harmonics of the model (2-4: the Fourier-series method, fold on P).")
@click.option("--min-period-h", type=float, help="Shortest period searched [h] (default 2 x the median cadence).")
@click.option("--max-period-h", type=float, help="Longest period searched [h] (default the time span).")
@click.option("--fold", type=click.Choice(["2P", "P"]), default=None,
              help="Rotation period = 2P (double-peaked; default for nterms 1) or P (default for nterms >= 2).")
@click.option("--offsets", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="One zero point per session (yes), one for all (no), or auto: one for all only when every "
                   "session is on a common system (DIFFERMAGS=FALSE, STANDARD INTERNAL/TRANSFORMED, one MAGBAND).")
@click.option("--reduce", type=click.Choice(["auto", "no"]), default="auto", show_default=True,
              help="auto: apply UCORMAG (unit-distance magnitudes) and LTCDAYS (light time) where the file "
                   "says they were not applied and gives them.")
@click.option("--png", type=click.Path(dir_okay=False), help="Phase-folded light curve as PNG.")
@click.pass_obj
def session_period_command(obj, session_ids, object_, nterms, min_period_h, max_period_h, fold, offsets, reduce,
                           png):
    """Period of imported (ALCDEF) light-curve sessions, searched together.

    Fourier-series periodogram with the peak refined beyond the grid, the period error and
    the false-alarm probability with the method that gave them
    (:func:`catdb.algorithms.lightcurve.period_search`; Harris et al. 1989).
    """
    from ..algorithms.lightcurve import period_search
    from ..ingest.alcdef import load_sessions

    if bool(session_ids) == bool(object_):
        raise InputError("give --session N (repeatable) or --object NAME", keyword="session")
    with _reader(obj) as conn:
        ids, sessions = load_sessions(conn, session_ids=list(session_ids) or None, object_=object_)
    mjd, mag, err, lab, notes = session_arrays(sessions, reduce=reduce, light_time=reduce)
    if fold is None:
        fold = "2P" if nterms == 1 else "P"
    use_offsets = {"yes": True, "no": False}.get(offsets, not common_system(sessions))
    ok = np.isfinite(mjd) & np.isfinite(mag)
    if min_period_h is None:  # periods shorter than twice the cadence are not sampled (Nyquist)
        min_period_h = 2 * 24 * float(np.median(np.diff(np.unique(mjd[ok]))))
    if max_period_h is None:
        max_period_h = 24 * float(np.ptp(mjd[ok]))
    res = period_search(mjd, mag, err if np.isfinite(err).all() else None, nterms=nterms,
                        double_peaked=(fold == "2P"), session=lab, session_offsets=use_offsets,
                        min_period=min_period_h / 24, max_period=max_period_h / 24)
    p_h, e_h = res.period * 24, res.period_err * 24
    label = sessions[0].object_label
    fap = "n/a" if not np.isfinite(res.fap) else f"{res.fap:.3g}"
    lines = [f"{label}: {len(sessions)} sessions ({', '.join(map(str, ids))}), {res.mjd.size} points over "
             f"{np.ptp(res.mjd):.2f} d; {'one zero point per session' if use_offsets else 'one zero point'}",
             *[f"  {n}" for n in notes],
             f"  best period P = {p_h:.5f} +- {e_h:.5f} h  ({res.period_err_method})",
             f"  rotation period ({fold}) = {res.rotation_period * 24:.5f} +- {res.rotation_period_err * 24:.5f} h",
             f"  peak HWHM {res.peak_hwhm_period * 24:.4f} h, grid step {res.grid_step_period * 24:.5f} h (refined)",
             f"  amplitude (peak to peak) = {res.amplitude:.3f} mag,  FAP = {fap},  nterms = {nterms}",
             f"  FAP method: {res.fap_method}",
             "  other peaks: " + ", ".join(f"{p * 24:.4f} h ({q:.3f})" for p, q in res.peaks[1:4]),
             f"  searched {min_period_h:.3f} h to {max_period_h:.3f} h"]
    click.echo("\n".join(lines))
    if png:
        _plot_period(obj, res, png, label, fold, fap)
