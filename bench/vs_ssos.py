"""Benchmark: catdb's mover search against the ssos pipeline on the same real Lowell frames.

ssos (Mahlke et al. 2019, A&C 28, 100289; PyPI ``ssos``) chains SExtractor, SCAMP and
SWarp and keeps the SCAMP-associated sources that move linearly.  catdb's ``movers``
stage implements the same filter chain on detections in the database.  This script

1. reduces the 23 raw science frames of ``data/lowell42-5945`` with catdb's own code
   (:mod:`catdb.algorithms.reduce`: master bias from ``zero/``, master ``VR`` flat from
   ``flat/``) and writes plain FITS copies for ssos (WCS cards as numbers, NaN pixels of the
   vignetted corners set to the frame median, ``DATE-BEG`` = full ISO start time because
   ``DATE-OBS`` holds the date only, ``GAIN`` from ``AGAIN_01``), cached on disk;
2. runs ssos offline in its own virtualenv (``--ssos-python`` or ``$SSOS_VENV``) with
   SkyBoT, check plots and cutouts off, SCAMP without a network reference catalogue
   (``--scamp-mode``: ``tycho2`` = a local FITS_LDAC reference catalogue built from
   ``data/tycho2/tycho2_lowell_field.csv``, no re-solving, the frames' own WCS;
   ``tycho2-solve`` = pattern matching and re-solving against it; ``none`` = no reference
   catalogue, which makes SCAMP 2.10 crash) and a local bright-star catalogue (same Tycho-2
   subset) for its bright-source filter;
3. runs catdb on the raw frames in a throwaway database (``bench/common.py``): ingest,
   stages ``reduce``, ``extract``, ``associate``, ``movers`` (skipped, with the reason, if a
   stage is not registered);
4. prints wall times, numbers of candidates and whether each known mover of
   ``data/MANIFEST.md`` is recovered: a candidate recovers a mover when its linear motion
   predicts the MANIFEST position at both JDs within ``--radius`` (3") arcsec.

Run from the repository root with the project's virtualenv::

    python bench/vs_ssos.py [--ssos-python /work/venv-ssos/bin/python] [--scamp-mode none|tycho2]

If ssos cannot run, the failing step and its error are printed and the catdb side still runs.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "data"
LOWELL = DATA / "lowell42-5945"
TYCHO = DATA / "tycho2" / "tycho2_lowell_field.csv"

#: MANIFEST.md known movers: name -> ((JD, RA, Dec), (JD, RA, Dec)), rate "/h
MOVERS = {
    "mover1 (9.3\"/h)": ((2458568.60418, 124.62662, 25.34294), (2458568.84034, 124.63359, 25.32967)),
    "mover2 (15.1\"/h)": ((2458568.60418, 124.75807, 25.34826), (2458568.84034, 124.78343, 25.34223)),
}

#: catdb movers parameters used on this night (as in tests/test_stage_movers.py)
CATDB_MOVERS = {"max_rate": "100", "min_detections": "8", "bright_refcat": "TYCHO2"}

#: ssos settings changed from its default.ssos (everything else as shipped)
SSOS_SETTINGS = {
    "DATE-OBS": "DATE-BEG",          # DATE-OBS of these frames holds the date only
    "CROSSMATCH_SKYBOT": "False",    # network (IMCCE SkyBoT)
    "CHECKPLOTS": "False",           # only SkyBoT plots exist
    "EXTRACT_CUTOUTS": "False",      # SWarp cutouts; --ssos-cutouts turns them on
}

_SSOS_STEPS = [("Creating source catalogues", "SExtractor"), ("Associating source detections", "SCAMP"),
               ("Initial sample size", "filters"), ("FILTER_", "filters"), ("cutouts", "SWarp cutouts"),
               ("All done", "done")]


# ---------------------------------------------------------------------------- shared reduction

def _sha(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def prepare_frames(cache: Path, n_frames: int | None) -> tuple[list[Path], float, bool]:
    """Reduce the science frames with catdb.algorithms.reduce; plain FITS copies for ssos.

    Returns (paths of the plain .fits frames, seconds spent, whether the cache was used).
    """
    from astropy.io import fits
    from astropy.time import Time

    from catdb import __version__
    from catdb.algorithms.reduce import master_bias, master_flat, reduce_science
    from catdb.wcsutil import clean_wcs_header

    raw = sorted((LOWELL / "science").glob("*.fits.fz"))
    if n_frames:
        raw = [raw[i] for i in np.unique(np.round(np.linspace(0, len(raw) - 1, n_frames)).astype(int))]
    biases = sorted((LOWELL / "zero").glob("*.fits.fz"))
    flats = sorted((LOWELL / "flat").glob("*.fits.fz"))
    if not raw or not biases or not flats:
        raise SystemExit(f"vs_ssos: raw Lowell frames not found under {LOWELL}")
    key = _sha(biases + flats + raw)[:12] + "-" + __version__
    out = cache / key
    paths = [out / r.name.replace(".fits.fz", ".fits") for r in raw]
    if all(p.is_file() for p in paths):
        return paths, 0.0, True
    warnings.simplefilter("ignore")  # long HISTORY/comment cards, FITSFixedWarning
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    bias = master_bias(biases)
    flat = master_flat(flats, bias, filter="VR")
    for r, p in zip(raw, paths):
        fz = out / r.name
        reduce_science(r, bias, flat, fz)
        with fits.open(fz) as hd:
            data = np.asarray(hd[1].data, dtype=np.float32)
            h = clean_wcs_header(hd[1].header, path=fz)
        bad = ~np.isfinite(data)
        data[bad] = np.median(data[~bad])
        start = Time(f"{h['DATE-OBS'].strip()}T{h['UTCSTART'].strip()}", format="isot", scale="utc")
        h["DATE-BEG"] = (start.isot, "UTC start of exposure (from DATE-OBS + UTCSTART)")
        if "GAIN" not in h and "AGAIN_01" in h:
            h["GAIN"] = (float(h["AGAIN_01"]), "[e-/ADU] copied from AGAIN_01")
        h["NANFILL"] = (int(bad.sum()), "NaN pixels (flat < MINFLAT) set to the median")
        for k in ("XTENSION", "PCOUNT", "GCOUNT", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2",
                  "ZTILE1", "ZTILE2", "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0", "ZNAME1", "ZVAL1",
                  "ZNAME2", "ZVAL2", "EXTNAME"):
            h.remove(k, ignore_missing=True, remove_all=True)
        tmp = p.with_name(f".{os.getpid()}.{p.name}")
        fits.PrimaryHDU(data, header=h).writeto(tmp, overwrite=True, output_verify="fix")
        os.replace(tmp, p)
        fz.unlink()
    return paths, time.perf_counter() - t0, False


# ---------------------------------------------------------------------------- CPU time

def _self_cpu() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu() -> float:
    """User + system CPU seconds of the waited-for subprocesses (ssos and its SExtractor/SCAMP; catdb's
    SExtractor runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _server_cpu(conn) -> float | None:
    """CPU seconds of the PostgreSQL server so far: the postmaster and its live children (this
    session's backend, checkpointer, writers, autovacuum), via psutil; None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        post = psutil.Process(pid).parent()
        tot = 0.0
        for pr in [post, *post.children()]:
            try:
                t = pr.cpu_times()
                tot += t.user + t.system
            except psutil.Error:
                continue
        return tot
    except psutil.Error:
        return None


# ---------------------------------------------------------------------------- ssos

def _tycho_rows():
    from astropy.table import Table

    t = Table.read(TYCHO, format="ascii.csv")
    return np.asarray(t["ra_deg"], float), np.asarray(t["dec_deg"], float), np.asarray(t["mag_vt"], float)


def write_tycho_ldac(path: Path) -> int:
    """SCAMP FITS_LDAC reference catalogue from the Tycho-2 field subset (ASTREF_CATALOG FILE)."""
    from astropy.io import fits

    ra, dec, mag = _tycho_rows()
    err = np.full(ra.size, 0.3 / 3600)  # deg; decoded Tycho-2 index: no errors, no proper motions
    imhead = fits.Header({"SIMPLE": True, "BITPIX": 8, "NAXIS": 0})
    card = "".join(c.image for c in imhead.cards) + "END".ljust(80)
    hd1 = fits.BinTableHDU.from_columns(
        [fits.Column("Field Header Card", f"{len(card)}A", array=np.array([card]))], name="LDAC_IMHEAD")
    cols = [fits.Column("X_WORLD", "1D", "deg", array=ra), fits.Column("Y_WORLD", "1D", "deg", array=dec),
            fits.Column("ERRA_WORLD", "1E", "deg", array=err), fits.Column("ERRB_WORLD", "1E", "deg", array=err),
            fits.Column("ERRTHETA_WORLD", "1E", "deg", array=np.zeros(ra.size)),
            fits.Column("MAG", "1E", "mag", array=mag), fits.Column("MAGERR", "1E", "mag",
                                                                     array=np.full(ra.size, 0.05)),
            fits.Column("OBSDATE", "1D", "yr", array=np.full(ra.size, 2000.0))]
    hd2 = fits.BinTableHDU.from_columns(cols, name="LDAC_OBJECTS")
    fits.HDUList([fits.PrimaryHDU(), hd1, hd2]).writeto(path, overwrite=True)
    return ra.size


def _set_config(path: Path, values: dict) -> None:
    """Replace 'KEY value' lines of an ssos/SCAMP configuration file (keys must exist)."""
    text = path.read_text()
    for k, v in values.items():
        pat = re.compile(rf"^{re.escape(k)}[ \t]+\S+", re.M)
        if not pat.search(text):
            raise SystemExit(f"vs_ssos: {path}: no line for {k}; the ssos version changed its config")
        text = pat.sub(lambda m, k=k, v=v: f"{k} {v}", text, count=1)
    path.write_text(text)


def _last_step(log: str) -> str:
    step = "start-up (settings, image checks)"
    for marker, name in _SSOS_STEPS:
        if marker in log:
            step = name if marker != "FILTER_" else f"filters (last: {re.findall(r'FILTER_[A-Z_]+', log)[-1]})"
    return step


def run_ssos(python: str, frames: list[Path], work: Path, scamp_mode: str, cutouts: bool) -> dict:
    """Run the ssos pipeline offline on ``frames``; return status, seconds, candidates, log tail."""
    res = {"status": "not run", "seconds": None, "candidates": None, "detail": ""}
    if not Path(python).is_file():
        res["detail"] = (f"ssos python {python} not found: python3 -m venv /work/venv-ssos && "
                         "/work/venv-ssos/bin/pip install ssos sbpy statsmodels")
        return res
    work.mkdir(parents=True, exist_ok=True)
    fields = work / "field"
    fields.mkdir(exist_ok=True)
    for f in frames:
        link = fields / f.name
        if not link.exists():
            link.symlink_to(f)
    # SExtractor/SWarp under the names ssos calls ('sex', 'swarp'); Debian names them otherwise
    bindir = work / "bin"
    bindir.mkdir(exist_ok=True)
    for name, cands in (("sex", ("sex", "source-extractor")), ("swarp", ("swarp", "SWarp")), ("scamp", ("scamp",))):
        exe = next((shutil.which(c) for c in cands if shutil.which(c)), None)
        if exe is None:
            res["detail"] = f"{name}: none of {cands} on PATH"
            return res
        if not (bindir / name).exists():
            (bindir / name).symlink_to(exe)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    if not (work / "default.ssos").is_file():
        p = subprocess.run([python, "-m", "ssos", "-d"], cwd=work, env=env, capture_output=True, text=True)
        if p.returncode != 0 or not (work / "default.ssos").is_file():
            res.update(status="failed", detail=f"'ssos -d' (copy default config): {p.stderr.strip()[-800:]}")
            return res
    ra, dec, mag = _tycho_rows()
    bright = work / "bright_tycho2.csv"
    bright.write_text("RA,DEC,MAG\n" + "".join(f"{a:.7f},{b:.7f},{m:.3f}\n" for a, b, m in zip(ra, dec, mag)))
    semp = work / "semp"
    settings = {**SSOS_SETTINGS, "SEX_CONFIG": semp / "ssos.sex", "SEX_PARAMS": semp / "ssos.param",
                "SEX_FILTER": semp / "gauss_2.5_5x5.conv", "SEX_NNW": semp / "default.nnw",
                "SCAMP_CONFIG": semp / "ssos.scamp", "SWARP_CONFIG": semp / "ssos.swarp",
                "BRIGHT_SOURCES_CAT": bright}
    if cutouts:
        settings["EXTRACT_CUTOUTS"] = "True"
    cfg = work / "bench.ssos"
    shutil.copy(work / "default.ssos", cfg)
    _set_config(cfg, settings)
    scamp_cfg = {"CHECKPLOT_DEV": "NULL", "WRITE_XML": "N", "REF_TIMEOUT": "1"}
    solve = "Y" if scamp_mode == "tycho2-solve" else "N"
    if scamp_mode == "none":
        scamp_cfg.update(ASTREF_CATALOG="NONE", SOLVE_ASTROM="N", MATCH="N")
    else:
        res["refstars"] = write_tycho_ldac(work / "tycho2_lowell.ldac")
        scamp_cfg.update(ASTREF_CATALOG="FILE", ASTREFCAT_NAME=str(work / "tycho2_lowell.ldac"),
                         ASTREF_BAND="DEFAULT", SOLVE_ASTROM=solve, MATCH=solve, SAVE_REFCATALOG="N")
    _set_config(semp / "ssos.scamp", scamp_cfg)
    target = work / "out"
    shutil.rmtree(target, ignore_errors=True)
    cmd = [python, "-m", "ssos", str(fields), "-c", str(cfg), "-t", str(target), "--sex", "--scamp", "--swarp"]
    t0, c0, l0 = time.perf_counter(), _children_cpu(), os.getloadavg()[0]
    p = subprocess.run(cmd, cwd=work, env={**env, "COLUMNS": "100"}, capture_output=True, text=True)
    res["seconds"] = time.perf_counter() - t0
    res["cpu"] = {"ssos + SExtractor + SCAMP": _children_cpu() - c0}
    res["load"] = (l0, os.getloadavg()[0])
    log = p.stdout + p.stderr
    (work / "ssos_stdout.log").write_text(log)
    res["cmd"] = " ".join(cmd)
    out = sorted((target / "cats").glob("ssos_*.csv")) if (target / "cats").is_dir() else []
    if p.returncode != 0 or not out:
        err = [ln for ln in log.strip().splitlines() if ln.strip()]
        exc = next((ln for ln in reversed(err) if re.match(r"^[\w.]+(Error|Exception)\b", ln)), err[-1] if err else "")
        crash = re.search(r"([^\n\r>]*)[\s>]*\n(Segmentation fault|Killed|Aborted)[^\n]*", log)
        if crash:
            exc = f"{crash.group(2)} of the subprocess after '{crash.group(1).strip()}'; then {exc.strip()}"
        res.update(status="failed", detail=f"step {_last_step(log)}: {exc.strip()} (full log: "
                   f"{work / 'ssos_stdout.log'}, kept with --keep)")
        if "No source candidates left" in log:
            res.update(status="ok", candidates=_empty_candidates(), detail="no candidates left after "
                       + _last_step(log))
        return res
    res.update(status="ok", candidates=ssos_candidates(out[-1]), output=str(out[-1]))
    return res


def _empty_candidates():
    return {"name": np.array([], dtype=object), "n": np.array([], int), "rate": np.array([]),
            "a_ra": np.array([]), "b_ra": np.array([]), "a_dec": np.array([]), "b_dec": np.array([]),
            "mjd0": 0.0}


def _grouped_line(g, t, y):
    """Least-squares y = a + b (t - tmean_g) per group g (vectorised); returns a, b, tmean per group."""
    n = np.bincount(g)
    tm = np.bincount(g, t) / n
    dt = t - tm[g]
    ym = np.bincount(g, y) / n
    stt = np.bincount(g, dt * dt)
    b = np.divide(np.bincount(g, dt * (y - ym[g])), stt, out=np.zeros_like(stt), where=stt > 0)
    return ym, b, tm


def ssos_candidates(csv: Path) -> dict:
    """Per-source linear motion of the ssos output (one row per detection)."""
    from astropy.table import Table

    t = Table.read(csv, format="ascii.csv")
    if len(t) == 0:
        return _empty_candidates()
    src = np.asarray(t["SOURCE_NUMBER"])
    names, g = np.unique(src, return_inverse=True)
    mjd = np.asarray(t["MID_EXPOSURE_MJD"], float)
    mjd0 = float(np.floor(mjd.min()))
    ra, dec = np.asarray(t["RA"], float), np.asarray(t["DEC"], float)
    a_ra, b_ra, tm = _grouped_line(g, mjd - mjd0, ra)
    a_dec, b_dec, _ = _grouped_line(g, mjd - mjd0, dec)
    # intercepts at mjd0: a - b * tmean
    a_ra, a_dec = a_ra - b_ra * tm, a_dec - b_dec * tm
    rate = np.hypot(b_ra * np.cos(np.radians(a_dec)), b_dec) * 3600 / 24
    return {"name": names.astype(str), "n": np.bincount(g), "rate": rate, "a_ra": a_ra, "b_ra": b_ra,
            "a_dec": a_dec, "b_dec": b_dec, "mjd0": mjd0}


# ---------------------------------------------------------------------------- catdb

#: ssos.sex settings that decide how much SExtractor measures (--ssos-extraction hands them to catdb)
SSOS_EXTRACTION_KEYS = ("DETECT_THRESH", "ANALYSIS_THRESH", "DETECT_MINAREA", "FILTER_NAME", "DEBLEND_NTHRESH",
                        "DEBLEND_MINCONT", "CLEAN_PARAM", "PHOT_AUTOPARAMS", "BACKPHOTO_TYPE", "SEEING_FWHM",
                        "BACK_SIZE", "BACK_FILTERSIZE")


def ssos_extraction_config(python: str) -> str:
    """ssos's own SExtractor settings (its ``semp/ssos.sex``) as catdb extract ``config`` (KEY=VALUE,...)."""
    p = subprocess.run([python, "-c", "import ssos, os; print(os.path.dirname(ssos.__file__))"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"--ssos-extraction: cannot import ssos with {python}: {p.stderr.strip()[-300:]}")
    semp = Path(p.stdout.strip()) / "semp"
    vals = {}
    for line in (semp / "ssos.sex").read_text().splitlines():
        parts = line.split("#", 1)[0].split(None, 1)
        if len(parts) == 2 and parts[0] in SSOS_EXTRACTION_KEYS:
            vals[parts[0]] = parts[1].replace(" ", "")
    if "FILTER_NAME" in vals:
        vals["FILTER_NAME"] = str(semp / vals["FILTER_NAME"])
    return ",".join(f"{k}={v}" for k, v in vals.items())


def run_catdb(workdir: Path, n_frames: int | None, detect_thresh: float, config: str | None = None) -> dict:
    """catdb on the raw frames in a throwaway database: ingest, reduce, extract, associate, movers.

    ``config``: extra SExtractor settings for the extract stage (its ``config`` parameter).
    """
    from catdb.stages import all_stages

    need = ["reduce", "extract", "associate", "movers"]
    have = set(all_stages())
    missing = [s for s in need if s not in have]
    res = {"status": "not run", "seconds": {}, "candidates": None, "detail": ""}
    if missing:
        res["status"] = "skipped"
        res["detail"] = (f"stage(s) {', '.join(missing)} not registered on this branch "
                         f"(catdb.stages.all_stages() has {', '.join(sorted(have))})")
        return res
    from bench.common import bench_server
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_images, ingest_refcat
    from catdb.stages import run_stage

    raw = sorted((LOWELL / "science").glob("*.fits.fz"))
    if n_frames:
        raw = [raw[i] for i in np.unique(np.round(np.linspace(0, len(raw) - 1, n_frames)).astype(int))]
    calib = sorted((LOWELL / "zero").glob("*.fits.fz")) + sorted((LOWELL / "flat").glob("*.fits.fz"))
    sec = res["seconds"]
    cpu = res["cpu"] = {"catdb (Python)": 0.0, "SExtractor": 0.0, "PostgreSQL": 0.0}
    loads = []
    with bench_server() as url:
        conn = connect(url)

        def snap():
            return time.perf_counter(), _self_cpu(), _children_cpu(), _server_cpu(conn)

        def account(name, a, b):  # wall per step; CPU summed over the timed steps (not reduce)
            sec[name] = b[0] - a[0]
            if name != "reduce":
                cpu["catdb (Python)"] += b[1] - a[1]
                cpu["SExtractor"] += b[2] - a[2]
                cpu["PostgreSQL"] = None if a[3] is None or cpu["PostgreSQL"] is None \
                    else cpu["PostgreSQL"] + b[3] - a[3]
                loads.append(os.getloadavg()[0])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loads.append(os.getloadavg()[0])
            a = snap()
            ingest_images(conn, raw + calib)
            ingest_refcat(conn, TYCHO, catalog="TYCHO2")
            conn.commit()
            account("ingest", a, snap())
            for name, params in (("reduce", {"outdir": str(workdir)}),
                                 ("extract", {"outdir": str(workdir), "detect_thresh": str(detect_thresh),
                                              **({"config": config} if config else {})}),
                                 ("associate", {}), ("movers", CATDB_MOVERS)):
                a = snap()
                r = run_stage(name, conn=conn, params=params, progress=False)
                conn.commit()
                account(name, a, snap())
                res.setdefault("counts", {})[name] = r.counts
        res["load"] = (loads[0], loads[-1])
        rows = conn.execute("SELECT id, n_detections, rate, ra, dec, mjd_ref, rate_ra, rate_dec FROM track "
                            "WHERE status = 'candidate' ORDER BY id").fetchall()
        res["n_detections"] = conn.execute("SELECT count(*) FROM detection").fetchone()[0]
        conn.close()
    a = np.array(rows, dtype=float).reshape(-1, 8)
    # RA(t) = ra + rate_ra * dt / cos(dec), Dec(t) = dec + rate_dec * dt; rates "/h -> deg/d
    cosd = np.cos(np.radians(a[:, 4]))
    mjd0 = float(np.floor(a[:, 5].min())) if len(a) else 0.0
    b_ra = a[:, 6] * 24 / 3600 / np.where(cosd == 0, 1, cosd)
    b_dec = a[:, 7] * 24 / 3600
    res["candidates"] = {"name": a[:, 0].astype(int).astype(str), "n": a[:, 1].astype(int), "rate": a[:, 2],
                         "a_ra": a[:, 3] - b_ra * (a[:, 5] - mjd0), "b_ra": b_ra,
                         "a_dec": a[:, 4] - b_dec * (a[:, 5] - mjd0), "b_dec": b_dec, "mjd0": mjd0}
    res["status"] = "ok"
    return res


# ---------------------------------------------------------------------------- comparison

def recovered(c: dict, radius: float) -> dict:
    """For each MANIFEST mover: (candidate name, n, rate, worst separation ") or None."""
    out = {}
    if c is None:
        return {m: None for m in MOVERS}
    for m, epochs in MOVERS.items():
        seps = []
        for jd, ra, dec in epochs:
            t = jd - 2400000.5 - c["mjd0"]
            pra, pdec = c["a_ra"] + c["b_ra"] * t, c["a_dec"] + c["b_dec"] * t
            seps.append(np.hypot((pra - ra) * np.cos(np.radians(dec)), pdec - dec) * 3600)
        worst = np.max(seps, axis=0) if seps and len(c["name"]) else np.array([])
        ok = np.flatnonzero(worst <= radius)
        if ok.size:
            i = ok[np.argmin(worst[ok])]
            out[m] = (c["name"][i], int(c["n"][i]), float(c["rate"][i]), float(worst[i]))
        else:
            out[m] = None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    venv = os.environ.get("SSOS_VENV", "/work/venv-ssos")
    ap.add_argument("--ssos-python", default=str(Path(venv) / "bin" / "python"),
                    help="python of the virtualenv with ssos (default $SSOS_VENV/bin/python or /work/venv-ssos)")
    ap.add_argument("--scamp-mode", choices=("tycho2", "tycho2-solve", "none"), default="tycho2",
                    help="ssos SCAMP: tycho2 = local Tycho-2 LDAC reference, frames' WCS kept (no "
                         "re-solving); tycho2-solve = pattern matching and re-solving against it; "
                         "none = ASTREF_CATALOG NONE (SCAMP 2.10 segfaults in cross-identification)")
    ap.add_argument("--ssos-cutouts", action="store_true", help="let ssos make its SWarp cutouts (slower)")
    ap.add_argument("--cache", default=os.environ.get("CATDB_BENCH_CACHE", "/tmp/catdb-bench-cache/vs_ssos"),
                    help="directory caching the reduced plain-FITS frames")
    ap.add_argument("--frames", type=int, default=None, help="use N frames spread over the night (default all 23)")
    ap.add_argument("--radius", type=float, default=3.0, help="recovery radius at both MANIFEST JDs [arcsec]")
    ap.add_argument("--detect-thresh", type=float, default=3.0, help="catdb extract DETECT_THRESH (sigma)")
    ap.add_argument("--extract-config", default=None,
                    help="more SExtractor settings for catdb's extract stage, KEY=VALUE,KEY=VALUE")
    ap.add_argument("--ssos-extraction", action="store_true",
                    help="give catdb's extract ssos's own SExtractor settings (ssos.sex: threshold, filter, "
                         "deblending, Kron parameters, fixed SEEING_FWHM...): both tools then do the same "
                         "extraction work and the pipelines around it are compared")
    ap.add_argument("--catdb-first", action="store_true",
                    help="run catdb before ssos (default after): on a shared machine whose load drifts, "
                         "run the bench both ways")
    ap.add_argument("--skip-ssos", action="store_true")
    ap.add_argument("--skip-catdb", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="catdb-vs-ssos-", dir="/tmp"))
    try:
        frames, t_red, cached = prepare_frames(Path(args.cache), args.frames)
        print(f"reduced frames for ssos: {len(frames)} in {frames[0].parent} "
              f"({'cached' if cached else f'{t_red:.1f} s with catdb.algorithms.reduce'})")
        ss = {"status": "skipped", "detail": "--skip-ssos", "seconds": None, "candidates": None}
        cd = {"status": "skipped", "detail": "--skip-catdb", "seconds": {}, "candidates": None}
        order = ["catdb", "ssos"] if args.catdb_first else ["ssos", "catdb"]
        for tool in order:
            if tool == "ssos" and not args.skip_ssos:
                ss = run_ssos(args.ssos_python, frames, work / "ssos", args.scamp_mode, args.ssos_cutouts)
            if tool == "catdb" and not args.skip_catdb:
                cfg = ",".join(c for c in (ssos_extraction_config(args.ssos_python) if args.ssos_extraction
                                           else None, args.extract_config) if c)
                if cfg:
                    print(f"catdb extract config: {cfg}")
                cd = run_catdb(work / "catdb", args.frames, args.detect_thresh, cfg or None)
        report(ss, cd, args, len(frames))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(ss: dict, cd: dict, args, n_frames: int) -> None:
    w = 34
    print()
    print(f"{'':<22}{'ssos (SCAMP ' + args.scamp_mode + ')':<{w}}{'catdb':<{w}}")
    print(f"{'status':<22}{ss['status']:<{w}}{cd['status']:<{w}}")
    cs = cd.get("seconds") or {}
    c_total = sum(v for k, v in cs.items() if k != "reduce") if cs else None
    fmt = lambda v: "-" if v is None else f"{v:.1f} s"  # noqa: E731
    print(f"{'wall time':<22}{fmt(ss.get('seconds')):<{w}}"
          f"{(fmt(c_total) + ' (ingest+extract+assoc+movers)') if cs else '-':<{w}}")
    if cs:
        print(f"{'  catdb by step':<22}{'':<{w}}" + ", ".join(f"{k} {v:.1f}" for k, v in cs.items()))
    cpu_s, cpu_c = ss.get("cpu") or {}, cd.get("cpu") or {}
    tot = lambda d: None if not d or any(v is None for v in d.values()) else sum(d.values())  # noqa: E731
    print(f"{'CPU time':<22}{fmt(tot(cpu_s)):<{w}}{fmt(tot(cpu_c)):<{w}}")
    if cpu_c:
        print(f"{'  catdb CPU by part':<22}{'':<{w}}" + ", ".join(
            f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in cpu_c.items()))
    ld = lambda r: "-" if not r.get("load") else f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}"  # noqa: E731
    print(f"{'load average (1 min)':<22}{ld(ss):<{w}}{ld(cd):<{w}}")
    nc = lambda r: "-" if r.get("candidates") is None else str(len(r["candidates"]["name"]))  # noqa: E731
    print(f"{'candidates':<22}{nc(ss):<{w}}{nc(cd):<{w}}")
    rs, rc = recovered(ss.get("candidates"), args.radius), recovered(cd.get("candidates"), args.radius)
    for m in MOVERS:
        f = lambda x: "no" if x is None else f"yes: #{x[0]}, {x[1]} det, {x[2]:.1f}\"/h, {x[3]:.1f}\""  # noqa: E731
        print(f"{m:<22}{f(rs[m]):<{w}}{f(rc[m]):<{w}}")
    for r, name in ((ss, "ssos"), (cd, "catdb")):
        c = r.get("candidates")
        if c is not None and len(c["name"]):
            print(f"{name} candidates (id, n, rate \"/h): " + "; ".join(
                f"{a} {b} {d:.1f}" for a, b, d in zip(c["name"], c["n"], c["rate"])))
        if r.get("detail"):
            print(f"{name}: {r['detail']}")
    print(f"recovery: predicted position at both MANIFEST JDs within {args.radius}\"; {n_frames} frames")
    if ss.get("seconds") and c_total:
        both = all(x is not None for x in rc.values())
        ratio_cpu = (f"; CPU time {tot(cpu_c) / tot(cpu_s):.2f}" if tot(cpu_c) is not None and tot(cpu_s)
                     else "")
        print(f"catdb / ssos wall time: {c_total / ss['seconds']:.2f} (target <= 0.5){ratio_cpu}; "
              f"catdb recovers {'both' if both else 'not both'} MANIFEST movers, ssos "
              f"{sum(x is not None for x in rs.values())} of {len(rs)}")


if __name__ == "__main__":
    main()
