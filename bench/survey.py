"""A synthetic survey through the whole catdb chain: wall time and peak memory of every stage per size.

**Data** (:func:`generate`, cached in ``--cache``/<size>): ``size / 10,000`` exposures of a
2048 x 2048 pixel camera at 0.9"/pix (30.7' field, TAN WCS with a +-30" dither) with about
10,000 detections each, written as SExtractor FITS_LDAC catalogues (``LDAC_IMHEAD`` with the
WCS, DATE-OBS/MJD-OBS, EXPTIME, FILTER r, site; ``LDAC_OBJECTS`` with the columns of catdb's
``catdb.param`` that a point source needs).  Schedule: ``F`` fields of a strip at Dec +5 (F = 5
for 10^6, 10 above), each visited 20 times a night (every F x 90 s), as many nights as the
size needs (10^6: 1 night; 10^7: 5 nights; 10^8: 50).  Sky model:

- stars per field (fixed over the nights, so the object table grows with the footprint, the
  detection table with the visits): magnitudes 14-23.5 with dN/dm ~ 10^(0.3 m), proper
  motions N(0, 10) mas/yr per axis from epoch 2016.0, so ~10,000 per exposure above S/N 5;
- per exposure: seeing FWHM U(0.8, 1.8)", zeropoint 25 - 0.15 airmass + N(0, 0.05) mag
  (transparency), limiting magnitude (S/N 5) 21.5 + (zp - 25) - 2.5 log10(FWHM / 1");
  S/N(m) = 5 x 10^(-0.4 (m - m_lim)) (with a 0.5% floor), detected when S/N + N(0, 1) >= 5;
  positions scattered by hypot(0.03", 0.6 FWHM / S/N), instrumental MAG_AUTO = m - zp +
  N(0, 1.0857 / S/N);
- 1% of each catalogue are spurious detections (random positions, S/N 5-7, CLASS_STAR 0.3);
- asteroids (the truth, ``truth.npz``): per field and night Poisson(8), linear motion at
  U(2, 120)"/h in a random direction, magnitude U(18, 22.5), inside the field at mid-visit-
  sequence, detected like stars.

A synthetic reference catalogue of the stars (true magnitude r with 0.02 mag error, epoch 2016.0
positions and proper motions) is written as CSV (``refcat.csv``).

**Forced photometry needs images**: the 20 exposures of field 0 on night 0 also get an image
(2048 x 2048 float32: sky 100 ADU + Gaussian stars of the catalogue's fluxes + Poisson/read
noise) and are ingested with ``catdb ingest catalog X.ldac --image X.fits``; ``forced``
measures the survey's objects on those 20 exposures only (the same work at every size, so its
figure is per exposure, not a scaling test).  The rest is ingested by one ``catdb ingest
catalog -j 2`` (the figure used for the scaling).

**Run** (:func:`run`): a throwaway embedded server (``bench.common``-style), then each step as a
``catdb`` subprocess: ``ingest`` (``-j 2``), ``ingest-images`` (the 20 with ``--image``),
``refcat`` (``catdb refcat import``), ``calibrate`` (method pp against the synthetic refcat),
``associate`` (once on the whole survey, by sky partitions of at most 200,000 detections;
``--associate-by field`` runs it once per field with ``--where "e.object = 'F00k'"`` instead,
summed, which duplicates the objects of the overlaps between fields), ``movers`` (``min_detections = 8``,
0-300"/h), ``forced`` (objects on >= 10 epochs brighter than r = 18 and the candidate tracks, on
the 20 images), ``export-objects`` (the object table to Parquet) and ``export-catalog`` (the
calibrated detection catalogue to Parquet).  For each: wall time, peak RSS of the catdb process
tree (sampled every 0.2 s) and peak proportional set size (PSS: shared pages split between
processes) summed over the server's processes.  Then the recovery of the injected asteroids above
5 sigma on >= 8 exposures (:func:`_recovery`) among the movers candidates and the false candidates.  Results go to
``<cache>/<size>/results.json``; ``--compare A B`` prints the per-stage ratios of two result
files against linear.

    python bench/survey.py --size 1e6                 # ~100 catalogues, ~10^6 detections
    python bench/survey.py --size 1e6 1e7             # both, then the ratios
    python bench/survey.py --generate-only --size 1e7
    python bench/survey.py --compare /tmp/catdb-bench-cache/survey/1000000/results.json \\
                                     /tmp/catdb-bench-cache/survey/10000000/results.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_EXPOSURE = 10_000
NAXIS = 2048
PIXSCALE = 0.9          # arcsec / pix
VISITS = 20
CYCLE_S = 90.0          # exposure + overhead, s
EXPTIME = 60.0
DEC0 = 5.0
RA0 = 150.0
FIELD_STEP = 0.52       # deg between field centres
MJD0 = 61000.09         # first night, ~02:10 UTC (evening in Arizona)
SITE = dict(SITELONG=-111.6, SITELAT=35.1, SITEALT=2200.0)
STAR_MAGS = (14.0, 23.5)
#: version of the generated data: a cache of another version is generated again (2: truth.npy has
#: ``n_above``; the catalogues are the same as version 1's, the draws did not change)
DATA_VERSION = 2
FORCED_FIELD, FORCED_NIGHT = 0, 0


def plan(size):
    """Fields per night and nights for ``size`` detections (``size / 10^4`` exposures)."""
    n_exp = max(int(round(size / PER_EXPOSURE)), 2 * VISITS)
    fields = 10 if n_exp > 100 else max(2, min(5, n_exp // VISITS))   # smoke runs below 10^6: 2-4 fields
    nights = max(1, int(round(n_exp / (fields * VISITS))))
    return fields, nights


def _field_center(f):
    return RA0 + f * FIELD_STEP / np.cos(np.radians(DEC0)), DEC0


def _stars(f, n_per_exposure=PER_EXPOSURE):
    """The stars of field ``f`` (deterministic): ra, dec (deg, epoch 2016.0), pmra, pmdec (mas/yr), mag."""
    rng = np.random.default_rng(1000 + f)
    ra_c, dec_c = _field_center(f)
    half = (NAXIS * PIXSCALE / 2 + 60) / 3600.0            # field + dither margin, deg
    # dN/dm ~ 10^(0.3 m) on STAR_MAGS; ~19% are detected at the typical limit (measured)
    lo, hi = STAR_MAGS
    n = int(n_per_exposure / 0.19 * (2 * half) ** 2 / (NAXIS * PIXSCALE / 3600.0) ** 2)
    u = rng.random(n)
    mag = np.log10(10 ** (0.3 * lo) + u * (10 ** (0.3 * hi) - 10 ** (0.3 * lo))) / 0.3
    dec = dec_c + rng.uniform(-half, half, n)
    ra = ra_c + rng.uniform(-half, half, n) / np.cos(np.radians(dec_c))
    pmra, pmdec = rng.normal(0, 10.0, (2, n))
    return ra, dec, pmra, pmdec, mag


def _header(ra_c, dec_c, mjd_start, field, night, visit, fwhm, airmass):
    from astropy.io import fits
    from astropy.time import Time

    h = fits.Header()
    h["SIMPLE"] = True
    h["BITPIX"] = -32
    h["NAXIS"] = 2
    h["NAXIS1"] = NAXIS
    h["NAXIS2"] = NAXIS
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = float(ra_c), float(dec_c)
    h["CRPIX1"], h["CRPIX2"] = (NAXIS + 1) / 2, (NAXIS + 1) / 2
    h["CD1_1"], h["CD1_2"] = -PIXSCALE / 3600.0, 0.0
    h["CD2_1"], h["CD2_2"] = 0.0, PIXSCALE / 3600.0
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    h["DATE-OBS"] = Time(mjd_start, format="mjd", scale="utc").isot
    h["MJD-OBS"] = float(mjd_start)
    h["EXPTIME"] = EXPTIME
    h["FILTER"] = "r"
    h["OBJECT"] = f"F{field:03d}"
    h["IMAGETYP"] = "object"
    h["TELESCOP"] = "SYNTH-1m"
    h["INSTRUME"] = "synthcam"
    h["GAIN"], h["RDNOISE"], h["SATURATE"] = 1.5, 8.0, 60000.0
    h["AIRMASS"] = float(airmass)
    h["SEEING"] = float(fwhm)
    for k, v in SITE.items():
        h[k] = v
    h["COMMENT"] = f"catdb bench/survey.py synthetic exposure: field {field}, night {night}, visit {visit}"
    return h


def _write_ldac(path, header, cols):
    from astropy.io import fits

    cards = "".join(str(c) for c in header.cards) + "END".ljust(80)
    imhead = fits.BinTableHDU.from_columns(
        [fits.Column(name="Field Header Card", format=f"{len(cards)}A", array=np.array([cards]))],
        name="LDAC_IMHEAD")
    fmt = {np.dtype(np.int32): "J", np.dtype(np.int16): "I", np.dtype(np.float32): "E",
           np.dtype(np.float64): "D"}
    objects = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format=fmt[v.dtype], array=v) for k, v in cols.items()], name="LDAC_OBJECTS")
    tmp = str(path) + ".tmp"
    fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def _render(path, header, x, y, flux, fwhm_pix, rng):
    """A 2048^2 float32 image: sky 100 ADU, Gaussian stars of ``flux`` ADU at 1-based x, y, noise."""
    from astropy.io import fits

    img = np.full((NAXIS, NAXIS), 100.0, dtype=np.float64)
    s = fwhm_pix / 2.3548
    half = 6
    ok = (x > half + 1) & (x < NAXIS - half) & (y > half + 1) & (y < NAXIS - half)
    x, y, flux = x[ok] - 1, y[ok] - 1, flux[ok]
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    off = np.arange(-half, half + 1)
    dx = ix[:, None] + off[None, :] - x[:, None]
    dy = iy[:, None] + off[None, :] - y[:, None]
    gx = np.exp(-0.5 * (dx / s) ** 2)
    gy = np.exp(-0.5 * (dy / s) ** 2)
    stamp = flux[:, None, None] * gy[:, :, None] * gx[:, None, :] / (2 * np.pi * s * s)
    rows = (iy[:, None] + off[None, :])[:, :, None]
    cols = (ix[:, None] + off[None, :])[:, None, :]
    np.add.at(img, (np.broadcast_to(rows, stamp.shape).ravel(), np.broadcast_to(cols, stamp.shape).ravel()),
              stamp.ravel())
    gain, rn = header["GAIN"], header["RDNOISE"]
    img = rng.poisson(np.clip(img, 0, None) * gain) / gain + rng.normal(0, rn / gain, img.shape)
    h = header.copy()
    tmp = str(path) + ".tmp"
    fits.PrimaryHDU(img.astype(np.float32), header=h).writeto(tmp, overwrite=True, output_verify="silentfix")
    os.replace(tmp, path)


def generate(outdir, size, seed=7):
    """Write the survey's catalogues, refcat, truth and the forced-photometry images to ``outdir``.

    Returns
    -------
    dict
        ``catalogs`` (paths ingested with -j 2), ``imaged`` (list of (catalogue, image)), ``refcat``,
        ``truth``, ``n_detections``, ``bytes``.
    """
    from astropy.wcs import WCS

    outdir = Path(outdir)
    done = outdir / "manifest.json"
    if done.exists():
        man = json.loads(done.read_text())
        if man.get("data_version") == DATA_VERSION:
            return man
    outdir.mkdir(parents=True, exist_ok=True)
    fields, nights = plan(size)
    rng = np.random.default_rng(seed)
    stars = {f: _stars(f) for f in range(fields)}
    cats, imaged, truth = [], [], []
    n_det = 0
    ast_id = 0
    t0 = time.perf_counter()
    for night in range(nights):
        mjd_n = MJD0 + night
        # asteroids of this night, per field: inside the field at the middle of its visits
        ast = {}
        for f in range(fields):
            ra_c, dec_c = _field_center(f)
            k = rng.poisson(8)
            half = NAXIS * PIXSCALE / 2 * 0.8
            x0, y0 = rng.uniform(-half, half, (2, k))
            rate = rng.uniform(2.0, 120.0, k)
            pa = rng.uniform(0, 2 * np.pi, k)
            mag = rng.uniform(18.0, 22.5, k)
            tmid = mjd_n + ((VISITS - 1) / 2 * fields + f) * CYCLE_S / 86400 + EXPTIME / 2 / 86400
            cosd = np.cos(np.radians(dec_c))
            ast[f] = dict(id=np.arange(ast_id, ast_id + k), ra=ra_c + x0 / 3600 / cosd, dec=dec_c + y0 / 3600,
                          vra=rate * np.sin(pa), vdec=rate * np.cos(pa), mag=mag, tmid=tmid,
                          n=np.zeros(k, int), n5=np.zeros(k, int))
            ast_id += k
        for visit in range(VISITS):
            for f in range(fields):
                mjd_start = mjd_n + (visit * fields + f) * CYCLE_S / 86400
                mjd_mid = mjd_start + EXPTIME / 2 / 86400
                ra_c, dec_c = _field_center(f)
                ra_p = ra_c + rng.uniform(-30, 30) / 3600 / np.cos(np.radians(dec_c))
                dec_p = dec_c + rng.uniform(-30, 30) / 3600
                fwhm = rng.uniform(0.8, 1.8)
                airmass = 1.0 + 0.5 * abs(visit - VISITS / 2) / VISITS + 0.05 * f / fields
                zp = 25.0 - 0.15 * airmass + rng.normal(0, 0.05)
                mlim = 21.5 + (zp - 25.0) - 2.5 * np.log10(fwhm / 1.0)
                hdr = _header(ra_p, dec_p, mjd_start, f, night, visit, fwhm, airmass)
                w = WCS(hdr)
                sra, sdec, pmra, pmdec, smag = stars[f]
                dyr = (mjd_mid - 57388.0) / 365.25                 # years since 2016.0
                ra_t = sra + pmra * dyr / 3.6e6 / np.cos(np.radians(sdec))
                dec_t = sdec + pmdec * dyr / 3.6e6
                a = ast[f]
                dth = (mjd_mid - a["tmid"]) * 24
                ra_a = a["ra"] + a["vra"] * dth / 3600 / np.cos(np.radians(a["dec"]))
                dec_a = a["dec"] + a["vdec"] * dth / 3600
                ra_all = np.concatenate([ra_t, ra_a])
                dec_all = np.concatenate([dec_t, dec_a])
                mag_all = np.concatenate([smag, a["mag"]])
                src = np.concatenate([np.full(sra.size, -1), a["id"]])
                snr_true = 5 * 10 ** (-0.4 * (mag_all - mlim))
                snr = 1 / np.sqrt(1 / snr_true**2 + 0.005**2)
                det = snr + rng.normal(0, 1, snr.size) >= 5
                x, y = w.all_world2pix(ra_all[det], dec_all[det], 1)
                on = (x >= 0.5) & (x <= NAXIS + 0.5) & (y >= 0.5) & (y <= NAXIS + 0.5)
                idx = np.flatnonzero(det)[on]
                x, y = x[on], y[on]
                s_ = snr[idx]
                sig = np.hypot(0.03, 0.6 * fwhm / s_)                # arcsec
                # spurious detections: 1%
                n_sp = int(0.01 * idx.size)
                xs, ys = rng.uniform(1, NAXIS, (2, n_sp))
                x = np.concatenate([x + rng.normal(0, sig / PIXSCALE), xs])
                y = np.concatenate([y + rng.normal(0, sig / PIXSCALE), ys])
                s_ = np.concatenate([s_, rng.uniform(5, 7, n_sp)])
                sig = np.concatenate([sig, 0.6 * fwhm / s_[-n_sp:] if n_sp else np.zeros(0)])
                m_true = np.concatenate([mag_all[idx], mlim + 2.5 * np.log10(5 / s_[idx.size:])])
                ra_m, dec_m = w.all_pix2world(x, y, 1)
                mag_inst = m_true - zp + rng.normal(0, 1.0857 / s_)
                flux = 10 ** (-0.4 * mag_inst)
                n = x.size
                fwhm_pix = fwhm / PIXSCALE
                cls = np.concatenate([np.full(idx.size, 0.95), np.full(n_sp, 0.3)])
                cols = {
                    "NUMBER": np.arange(1, n + 1, dtype=np.int32),
                    "X_IMAGE": x.astype(np.float64), "Y_IMAGE": y.astype(np.float64),
                    "XWIN_IMAGE": x.astype(np.float64), "YWIN_IMAGE": y.astype(np.float64),
                    "ERRAWIN_IMAGE": (sig / PIXSCALE).astype(np.float32),
                    "ERRBWIN_IMAGE": (sig / PIXSCALE).astype(np.float32),
                    "ALPHA_J2000": ra_m, "DELTA_J2000": dec_m,
                    "ALPHAWIN_J2000": ra_m, "DELTAWIN_J2000": dec_m,
                    "ERRAWIN_WORLD": (sig / 3600).astype(np.float32),
                    "ERRBWIN_WORLD": (sig / 3600).astype(np.float32),
                    "FLUX_AUTO": flux.astype(np.float32), "FLUXERR_AUTO": (flux / s_).astype(np.float32),
                    "MAG_AUTO": mag_inst.astype(np.float32), "MAGERR_AUTO": (1.0857 / s_).astype(np.float32),
                    "FLUX_MAX": (flux / (2 * np.pi * (fwhm_pix / 2.3548) ** 2)).astype(np.float32),
                    "FLUX_RADIUS": np.full(n, fwhm_pix / 2, np.float32),
                    "FWHM_IMAGE": np.full(n, fwhm_pix, np.float32),
                    "A_IMAGE": np.full(n, fwhm_pix / 2.3548, np.float32),
                    "B_IMAGE": np.full(n, 0.92 * fwhm_pix / 2.3548, np.float32),
                    "THETA_IMAGE": rng.uniform(-90, 90, n).astype(np.float32),
                    "ELONGATION": np.full(n, 1 / 0.92, np.float32),
                    "CLASS_STAR": cls.astype(np.float32),
                    "FLAGS": np.zeros(n, np.int16),
                    "BACKGROUND": np.full(n, 100.0, np.float32),
                    "THRESHOLD": np.full(n, 15.0, np.float32),
                }
                name = f"n{night:03d}_f{f:03d}_v{visit:02d}"
                path = outdir / f"{name}.ldac"
                _write_ldac(path, hdr, cols)
                src_det = src[idx]
                np.add.at(ast[f]["n"], np.searchsorted(a["id"], src_det[src_det >= 0]), 1)
                # above 5 sigma: the injected flux over this exposure's noise (the catalogue's S/N) >= 5
                a5 = (src_det >= 0) & (snr[idx] >= 5.0)
                np.add.at(ast[f]["n5"], np.searchsorted(a["id"], src_det[a5]), 1)
                n_det += n
                if f == FORCED_FIELD and night == FORCED_NIGHT:
                    img = outdir / f"{name}.fits"
                    zp_adu = zp + 2.5 * np.log10(EXPTIME)  # image counts: the catalogue's flux
                    _render(img, hdr, x, y, 10 ** (-0.4 * (m_true - zp_adu + 2.5 * np.log10(EXPTIME))),
                            fwhm_pix, rng)
                    imaged.append((str(path), str(img)))
                else:
                    cats.append(str(path))
        for f in range(fields):
            a = ast[f]
            truth.append(np.rec.fromarrays([a["id"], np.full(a["id"].size, night), np.full(a["id"].size, f),
                                            a["ra"], a["dec"], np.full(a["id"].size, a["tmid"]),
                                            a["vra"], a["vdec"], a["mag"], a["n"], a["n5"]],
                                           names="id,night,field,ra,dec,mjd,rate_ra,rate_dec,mag,n_det,n_above"))
        print(f"  generated night {night + 1}/{nights}: {n_det:,} detections, {time.perf_counter() - t0:.0f} s",
              flush=True)
    truth = np.concatenate(truth)
    np.save(outdir / "truth.npy", truth)
    # reference catalogue: every star of the footprint at epoch 2016.0
    with open(outdir / "refcat.csv", "w") as fh:
        fh.write("id,ra,dec,pmra,pmdec,rmag,e_rmag\n")
        k = 0
        for f in range(fields):
            ra, dec, pmra, pmdec, mag = stars[f]
            mobs = mag + rng.normal(0, 0.02, mag.size)
            ids = np.arange(k, k + ra.size)
            k += ra.size
            np.savetxt(fh, np.column_stack([ids, ra, dec, pmra, pmdec, mobs, np.full(ra.size, 0.02)]),
                       fmt=["%d", "%.8f", "%.8f", "%.3f", "%.3f", "%.4f", "%.3f"], delimiter=",")
    nbytes = sum(p.stat().st_size for p in outdir.iterdir())
    man = dict(data_version=DATA_VERSION, size=size, fields=fields, nights=nights, catalogs=cats, imaged=imaged,
               refcat=str(outdir / "refcat.csv"), truth=str(outdir / "truth.npy"), n_detections=n_det,
               bytes=nbytes, generate_s=time.perf_counter() - t0)
    done.write_text(json.dumps(man))
    return man


# ---------------------------------------------------------------------------------------------
# running and measuring


@contextmanager
def server(port=5498):
    """A throwaway embedded catdb server at head: yields (url, data directory)."""
    from catdb.db import migrate
    from catdb.db.engine import engine
    from catdb.db.server import EmbeddedServer

    base = tempfile.mkdtemp(prefix="catdb-survey-", dir=os.environ.get("CATDB_BENCH_TMP", "/tmp"))
    os.chmod(base, 0o755)
    data = os.path.join(base, "pg")
    srv = EmbeddedServer(data, port=port)
    srv.start()
    try:
        url = srv.url()
        migrate.upgrade(url)
        engine(url).dispose()
        yield url, data
    finally:
        srv.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _postmaster(data):
    import psutil

    try:
        pid = int(Path(data, "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)
    except (OSError, ValueError, psutil.Error):
        return None


class Peak:
    """Samples, every ``dt`` s, the RSS of a process tree and the summed PSS of the server's processes."""

    def __init__(self, proc, data, dt=0.2):
        import psutil

        self.psutil = psutil
        self.proc = psutil.Process(proc.pid)
        self.pm = _postmaster(data)
        self.dt = dt
        self.client = 0
        self.server = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _sum(self, procs, attr):
        tot = 0
        for p in procs:
            try:
                mi = p.memory_full_info() if attr == "pss" else p.memory_info()
                tot += getattr(mi, attr)
            except self.psutil.Error:
                pass
        return tot

    def _loop(self):
        n = 0
        while not self._stop.is_set():
            try:
                tree = [self.proc] + self.proc.children(recursive=True)
            except self.psutil.Error:
                tree = []
            self.client = max(self.client, self._sum(tree, "rss"))
            if self.pm is not None and n % 3 == 0:    # PSS reads smaps: every third sample
                try:
                    srv = [self.pm] + self.pm.children(recursive=True)
                except self.psutil.Error:
                    srv = []
                self.server = max(self.server, self._sum(srv, "pss"))
            n += 1
            self._stop.wait(self.dt)

    def stop(self):
        self._stop.set()
        self._t.join()


def _catdb(url, data, args, log):
    """Run ``catdb -q ARGS`` against ``url``; returns (seconds, client peak RSS, server peak PSS)."""
    env = dict(os.environ, CATDB_URL=url, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", "import sys; from catdb.cli.main import cli; sys.exit(cli())", "-q", *args]
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ catdb -q {' '.join(a if len(a) < 200 else a[:200] + '...' for a in args[:8])}"
                 f"{' ...' if len(args) > 8 else ''}\n")
        fh.flush()
        p = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=str(ROOT))
        peak = Peak(p, data)
        rc = p.wait()
        peak.stop()
    dt = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"catdb {' '.join(args[:4])} failed (exit {rc}); see {log}")
    return dt, peak.client, peak.server


def _recovery(url, truth_path):
    """Recovery of the injected asteroids by the movers candidates, and the false candidates.

    *Eligible* (the issue's "above 5 sigma on >= 8 frames"): on >= 8 exposures the asteroid is on
    the detector, detected, and its S/N (injected flux over that exposure's noise, the S/N written
    in the catalogue) is >= 5 (``truth['n_above']``).  Detections below S/N 5 (upward noise) are in
    the catalogue, but ``associate`` leaves them out (``snr_min``) and so does the mover search.
    An asteroid is recovered by a candidate within 2" of its position at the candidate's epoch and
    2"/h of its rate; a candidate matching no injected asteroid is false.
    """
    import psycopg

    truth = np.load(truth_path)
    with psycopg.connect(url) as c:
        cand = np.array(c.execute("SELECT ra, dec, mjd_ref, rate_ra, rate_dec FROM track "
                                  "WHERE status = 'candidate'").fetchall(), dtype=float).reshape(-1, 5)
    found = np.zeros(len(truth), bool)
    used = np.zeros(len(cand), bool)
    for i, a in enumerate(truth):
        if not len(cand):
            break
        dt = (cand[:, 2] - a["mjd"]) * 24
        ra_p = a["ra"] + a["rate_ra"] * dt / 3600 / np.cos(np.radians(a["dec"]))
        dec_p = a["dec"] + a["rate_dec"] * dt / 3600
        sep = np.hypot((cand[:, 0] - ra_p) * np.cos(np.radians(a["dec"])), cand[:, 1] - dec_p) * 3600
        dv = np.hypot(cand[:, 3] - a["rate_ra"], cand[:, 4] - a["rate_dec"])
        hit = (sep < 2.0) & (dv < 2.0)
        found[i] = hit.any()
        used |= hit
    elig = truth["n_above"] >= 8
    det8 = truth["n_det"] >= 8
    missed = truth[elig & ~found]
    return dict(injected=int(len(truth)), eligible=int(elig.sum()), recovered=int((found & elig).sum()),
                detected_8=int(det8.sum()), recovered_of_detected_8=int((found & det8).sum()),
                candidates=int(len(cand)), false=int((~used).sum()),
                missed=[dict(id=int(m["id"]), night=int(m["night"]), field=int(m["field"]),
                             mag=round(float(m["mag"]), 2),
                             rate=round(float(np.hypot(m["rate_ra"], m["rate_dec"])), 1),
                             n_above=int(m["n_above"]), n_det=int(m["n_det"])) for m in missed])


STEPS = ("ingest", "ingest-images", "refcat", "calibrate", "associate", "movers", "forced", "export-objects",
         "export-catalog")


def run(man, workdir, log, associate_by="all", skip=(), port=5498):
    """Every step (but ``skip``) on a fresh server; returns {step: {seconds, client_rss, server_pss, ...}}."""
    out = {}
    with server(port) as (url, data):
        def step(name, args, rows=None):
            if name in skip:
                return
            dt, cl, sv = _catdb(url, data, args, log)
            out[name] = dict(seconds=round(dt, 2), client_rss_mb=round(cl / 2**20, 1),
                             server_pss_mb=round(sv / 2**20, 1))
            print(f"  {name:16s} {dt:9.1f} s   catdb {cl / 2**20:8.0f} MB   server {sv / 2**20:8.0f} MB",
                  flush=True)

        step("ingest", ["ingest", "catalog", "-j", "2", *man["catalogs"]])
        t0 = time.perf_counter()
        cl = sv = 0
        for cat, img in ([] if "ingest-images" in skip else man["imaged"]):
            _, c1, s1 = _catdb(url, data, ["ingest", "catalog", cat, "--image", img], log)
            cl, sv = max(cl, c1), max(sv, s1)
        if "ingest-images" not in skip:
            out["ingest-images"] = dict(seconds=round(time.perf_counter() - t0, 2), client_rss_mb=round(cl / 2**20, 1),
                                        server_pss_mb=round(sv / 2**20, 1))
            print(f"  {'ingest-images':16s} {out['ingest-images']['seconds']:9.1f} s   ({len(man['imaged'])} "
                  "catalogues with --image, one process each)", flush=True)
        step("refcat", ["refcat", "import", man["refcat"], "--catalog", "SYNTH", "--ra", "ra", "--dec", "dec",
                        "--id", "id", "--epoch", "2016.0", "--pmra", "pmra", "--pmdec", "pmdec",
                        "--mag", "r=rmag:e_rmag"])
        step("calibrate", ["stage", "calibrate", "-p", "refcat=SYNTH", "-p", "band=r"])
        if associate_by == "all" or "associate" in skip:
            step("associate", ["stage", "associate"])
        else:
            # one run per field (pointing), summed (objects in the overlaps of fields are duplicated)
            tot, cl, sv = 0.0, 0, 0
            for f in range(man["fields"]):
                dt, c1, s1 = _catdb(url, data, ["stage", "associate", "--where", f"e.object = 'F{f:03d}'"], log)
                tot, cl, sv = tot + dt, max(cl, c1), max(sv, s1)
            out["associate"] = dict(seconds=round(tot, 2), client_rss_mb=round(cl / 2**20, 1),
                                    server_pss_mb=round(sv / 2**20, 1), runs=man["fields"])
            print(f"  {'associate':16s} {tot:9.1f} s   catdb {cl / 2**20:8.0f} MB   server {sv / 2**20:8.0f} MB"
                  f"   ({man['fields']} runs, one per field)", flush=True)
        step("movers", ["stage", "movers", "-p", "min_detections=8"])
        step("forced", ["stage", "forced", "--where", "e.path LIKE '%.fits'", "-p", "use_raw=true",
                        "-p", "objects=n_epochs >= 10 AND mean_mag < 18", "-p", "tracks=status = 'candidate'",
                        "-p", "radius=4"])
        step("export-objects", ["export", "object", "-o", str(Path(workdir) / "objects.parquet")])
        step("export-catalog", ["export", "catalog", "-o", str(Path(workdir) / "catalog.parquet")])
        import psycopg

        with psycopg.connect(url) as c:
            counts = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("exposure", "detection", "object", "zeropoint", "track", "forced_source")}
            counts["db_bytes"] = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            counts["zeropoints_ok"] = c.execute("SELECT count(*) FROM zeropoint WHERE ok").fetchone()[0]
        out["counts"] = counts
        if "movers" not in skip:
            out["movers_recovery"] = _recovery(url, man["truth"])
    return out


def compare(a, b):
    """Per-step ratio of b to a, against the ratio of their detections (1.0 = linear)."""
    ra, rb = (json.loads(Path(p).read_text()) for p in (a, b))
    scale = rb["n_detections"] / ra["n_detections"]
    print(f"{ra['n_detections']:,} -> {rb['n_detections']:,} detections (x{scale:.2f})")
    print(f"{'step':16s} {'s (a)':>9s} {'s (b)':>9s} {'b/a':>7s} {'/linear':>8s} {'catdb MB a->b':>15s} "
          f"{'server MB a->b':>16s}")
    for k, va in ra["steps"].items():
        vb = rb["steps"].get(k)
        if not isinstance(va, dict) or not vb or "seconds" not in va:
            continue
        r = vb["seconds"] / max(va["seconds"], 1e-9)
        lin = r / scale if k not in ("forced", "ingest-images") else float("nan")
        print(f"{k:16s} {va['seconds']:9.1f} {vb['seconds']:9.1f} {r:7.2f} {lin:8.2f} "
              f"{va['client_rss_mb']:6.0f}->{vb['client_rss_mb']:<6.0f} {va['server_pss_mb']:7.0f}->"
              f"{vb['server_pss_mb']:<7.0f}")
    print("(forced and ingest-images work on the same 20 imaged exposures at every size: not scaled)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--port", type=int, default=5498, help="port of the throwaway server")
    ap.add_argument("--cache", default=os.environ.get("CATDB_BENCH_CACHE", "/tmp/catdb-bench-cache") + "/survey")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--associate-by", choices=("field", "all"), default="all",
                    help="associate once on the whole survey (default, by sky partitions) or once per field")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    ap.add_argument("--skip", nargs="+", default=[], choices=STEPS[1:], metavar="STEP",
                    help=f"steps not run ({', '.join(STEPS[1:])}; ingest always runs)")
    a = ap.parse_args(argv)
    if a.compare:
        compare(*a.compare)
        return
    results = []
    for size in a.size:
        size = int(size)
        d = Path(a.cache) / str(size)
        fields, nights = plan(size)
        print(f"size {size:,}: {fields} fields x {VISITS} visits x {nights} nights", flush=True)
        man = generate(d, size)
        print(f"  data: {man['n_detections']:,} detections in {len(man['catalogs']) + len(man['imaged'])} "
              f"catalogues, {man['bytes'] / 2**30:.2f} GiB ({man.get('generate_s', 0):.0f} s to generate)",
              flush=True)
        if a.generate_only:
            continue
        log = d / "run.log"
        steps = run(man, d, log, a.associate_by, skip=set(a.skip), port=a.port)
        res = dict(size=size, n_detections=man["n_detections"], fields=fields, nights=nights,
                   data_bytes=man["bytes"], steps=steps, associate_by=a.associate_by, cores=os.cpu_count(),
                   load=os.getloadavg(), when=time.strftime("%Y-%m-%d %H:%M:%S"))
        (d / "results.json").write_text(json.dumps(res, indent=1))
        print(f"  counts {steps['counts']}\n  movers {steps.get('movers_recovery')}\n  -> {d / 'results.json'}",
              flush=True)
        results.append(d / "results.json")
    if len(results) >= 2:
        compare(results[0], results[-1])


if __name__ == "__main__":
    main()
