"""The real Lowell 42-inch night (MANIFEST ``lowell42-5945``), reduced and extracted once.

:func:`night_catalogs` reduces the raw science frames (overscan, master bias from
``zero/``, master ``VR`` flat from ``flat/``; :mod:`catdb.algorithms.reduce`) and runs
SExtractor (:func:`catdb.ingest.extract.extract`, ``DETECT_THRESH`` :data:`EXTRACT_CONFIG`)
on them, caching the reduced image and the FITS_LDAC catalogue of every frame on disk in
``/tmp/catdb-test-cache/lowell/<key>/`` where ``key`` hashes the raw frame's SHA-256, the
calibration frames' SHA-256, the extraction configuration and :data:`REDUCE_VERSION` (the
reduced frames are bit-for-bit reproducible, so every cache holds the same pixels): a
second test session (or a second test module) reuses them.  Files are written under a
temporary name and renamed, so concurrent sessions never read a half-written file.

:func:`load_night` ingests the reduced images (``ingest_images``) into a catdb database and
attaches each catalogue to its exposure (``attach_catalog``) inside one ``stage_run``.

The two known movers of MANIFEST.md are in :data:`MOVERS` with :func:`mover_radec`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from catdb.db.engine import connect
from catdb.ingest.headers import sha256_file
from catdb.ingest.load import ingest_refcat
from catdb.stages import run_stage
from tests.conftest import create_database, derived_db_url
from tests.helpers import REPO_DATA, TYCHO2_CSV

LOWELL = REPO_DATA / "lowell42-5945"
RAW = sorted((LOWELL / "science").glob("*.fits.fz"))
BIASES = sorted((LOWELL / "zero").glob("*.fits.fz"))
FLATS = sorted((LOWELL / "flat").glob("*.fits.fz"))
CACHE = Path(os.environ.get("CATDB_TEST_CACHE", "/tmp/catdb-test-cache")) / "lowell"

#: SExtractor overrides: DETECT_THRESH 3 keeps the noise peaks of the vignetted corners out
EXTRACT_CONFIG = {"DETECT_THRESH": 3.0, "ANALYSIS_THRESH": 3.0}

#: MANIFEST.md known movers: (JD, RA, Dec) at two epochs, and the rate ("/h) given there
MOVERS = {
    "mover1": (((2458568.60418, 124.62662, 25.34294), (2458568.84034, 124.63359, 25.32967)), 9.3),
    "mover2": (((2458568.60418, 124.75807, 25.34826), (2458568.84034, 124.78343, 25.34223)), 15.1),
}

needs_lowell = pytest.mark.skipif(not RAW or not BIASES or not FLATS,
                                  reason=f"real Lowell data not found at {LOWELL}")

_MEMO: dict = {}


def mover_radec(name, mjd):
    """Linear interpolation (deg) of a MANIFEST mover's RA, Dec at ``mjd`` (MJD UTC)."""
    ((t1, r1, d1), (t2, r2, d2)), _ = MOVERS[name]
    f = (np.asarray(mjd, dtype=float) + 2400000.5 - t1) / (t2 - t1)
    return r1 + f * (r2 - r1), d1 + f * (d2 - d1)


def _calib_key() -> str:
    if "calib_key" not in _MEMO:
        _MEMO["calib_key"] = hashlib.sha256(
            "".join(sha256_file(p) for p in BIASES + FLATS).encode()).hexdigest()
    return _MEMO["calib_key"]


def _masters():
    if "masters" not in _MEMO:
        from catdb.algorithms.reduce import master_bias, master_flat

        bias = master_bias(BIASES)
        _MEMO["masters"] = (bias, master_flat(FLATS, bias, filter="VR"))
    return _MEMO["masters"]


def ingest_raw(conn, paths) -> list[int]:
    """Ingest raw frames (``ingest_images``); returns their exposure ids in the order given."""
    from catdb.ingest.load import ingest_images

    return [i for r in ingest_images(conn, paths) for i in r.exposure_ids]


def ingest_and_reduce(conn, science, outdir, *, biases=None, flats=None):
    """The reduced Lowell frames of a test module: raw ``science`` frames, biases and ``VR`` flats
    ingested, then stage ``reduce`` writing to ``outdir``.

    Two biases and two ``VR`` flats by default keep the masters quick (the reduce tests use all
    frames).  Returns ``(science exposure ids, reduce StageResult)``.
    """
    from catdb.stages import run_stage

    sci = ingest_raw(conn, science)
    ingest_raw(conn, BIASES[:2] if biases is None else biases)
    ingest_raw(conn, [f for f in FLATS if f.name != "20190326.0100.fits.fz"][:2] if flats is None else flats)
    return sci, run_stage("reduce", conn=conn, params={"outdir": str(outdir)})


def frames(n_frames: int | None = None):
    """Raw frames used: all 23, or ``n_frames`` spread evenly over the night (first and last kept)."""
    if n_frames is None or n_frames >= len(RAW):
        return list(RAW)
    idx = np.unique(np.round(np.linspace(0, len(RAW) - 1, n_frames)).astype(int))
    return [RAW[i] for i in idx]


#: part of the cache key: how the reduced frames are written (a change re-makes the cache);
#: "dither-seed-name" = Rice quantisation dithered with the seed of
#: :func:`catdb.algorithms.reduce.dither_seed` (caches from before it hold clock-seeded pixels)
REDUCE_VERSION = "dither-seed-name"


def night_catalogs(n_frames: int | None = None):
    """Reduced image and FITS_LDAC catalogue of each frame, from the disk cache or made now.

    Returns
    -------
    list of (Path, Path)
        ``(reduced .fits.fz, catalogue .ldac)`` per frame, in time order.
    """
    from catdb.ingest.extract import extract

    out = []
    cfg = json.dumps(EXTRACT_CONFIG, sort_keys=True)
    for raw in frames(n_frames):
        key = hashlib.sha256(f"{sha256_file(raw)}|{_calib_key()}|{cfg}|{REDUCE_VERSION}".encode()).hexdigest()[:20]
        d = CACHE / key
        img, cat = d / raw.name, d / raw.name.replace(".fits.fz", ".ldac")
        if not (img.is_file() and cat.is_file()):
            from catdb.algorithms.reduce import reduce_science

            d.mkdir(parents=True, exist_ok=True)
            bias, flat = _masters()
            tmp_img = d / f".{os.getpid()}.{raw.name}"
            tmp_cat = d / f".{os.getpid()}.{cat.name}"
            reduce_science(raw, bias, flat, tmp_img)
            extract(tmp_img, tmp_cat, config=EXTRACT_CONFIG)
            os.replace(tmp_img, img)
            os.replace(tmp_cat, cat)
        out.append((img, cat))
    return out


def load_night(conn, n_frames: int | None = None) -> dict:
    """Ingest the reduced Lowell night into a catdb database: exposures and their detections.

    Parameters
    ----------
    conn : psycopg.Connection
    n_frames : int, optional
        Number of frames (evenly spread); default all 23.

    Returns
    -------
    dict
        ``exposure_ids`` (time order), ``n_detections``, ``seconds`` (wall time of the
        reduction/extraction step, from the cache when warm) and ``run_id`` of the attach run.
    """
    from catdb.ingest.load import attach_catalog, ingest_images
    from catdb.db.provenance import finish_run, start_run

    t0 = time.perf_counter()
    pairs = night_catalogs(n_frames)
    seconds = time.perf_counter() - t0
    res = ingest_images(conn, [p for p, _ in pairs])
    ids = [r.exposure_ids[0] for r in res]
    run_id = start_run(conn, "test-attach-catalog", {"n_frames": n_frames, **EXTRACT_CONFIG})
    n = 0
    with conn.transaction():
        for eid, (_, cat) in zip(ids, pairs):
            n += attach_catalog(conn, eid, cat, run_id)
        finish_run(conn, run_id, inputs=ids, counts={"detection": n})
    order = conn.execute("SELECT id FROM exposure WHERE id = ANY(%s) ORDER BY mjd_mid", (ids,)).fetchall()
    return dict(exposure_ids=[r[0] for r in order], n_detections=n, seconds=seconds, run_id=run_id)


def _tycho2_near_field(conn) -> None:
    """Tycho-2 stars within ~1 deg of the field (the shipped all-sky file), for the bright-star veto."""
    t = Table.read(TYCHO2_CSV, format="ascii.csv")
    near = (np.abs(t["dec_deg"] - 25.33) < 1) & (np.abs(t["ra_deg"] - 124.62) < 1.2)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tycho2_lowell.csv"
        t[near].write(path, format="ascii.csv")
        ingest_refcat(conn, path)


#: what a test module may ask :func:`night_db_url` to have run on the night, by name
NIGHT_STEPS = {
    "tycho2": _tycho2_near_field,
    "associate": lambda c: run_stage("associate", conn=c, progress=False),
    "movers8": lambda c: run_stage("movers", conn=c, params={"max_rate": "100", "min_detections": "8"},
                                   progress=False),
    "movers5": lambda c: run_stage("movers", conn=c, params={"max_rate": "100", "min_detections": "5"},
                                   progress=False),
    "calibrate-relative": lambda c: run_stage("calibrate", conn=c, params={"method": "relative"}, progress=False),
}


def _night_template(pg_server, template_db, n_frames, steps) -> tuple[str, dict]:
    """Name and load info of the session's template: the night, then ``steps`` in order."""
    if not steps:
        def build(url):
            with connect(url) as c, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = load_night(c, n_frames)
                c.commit()
            return info

        _, info, name = derived_db_url(pg_server, template_db, ("lowell-night", n_frames), build)
        return name, info
    base, info = _night_template(pg_server, template_db, n_frames, steps[:-1])

    def step(url):
        with connect(url) as c, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            NIGHT_STEPS[steps[-1]](c)
            c.commit()

    _, _, name = derived_db_url(pg_server, base, ("lowell-step", steps[-1]), step)
    return name, info


def night_db_url(pg_server, template_db, n_frames: int | None = None, steps=()) -> tuple[str, dict]:
    """URL of a fresh database holding the loaded night (a copy of a per-session template).

    The night is loaded (:func:`load_night`) once per test session and spatial backend into a
    database made from the conftest's ``template_db``, and each prefix of ``steps`` is run once on
    a copy of the template before it (:func:`tests.conftest.derived_db_url`); every call returns a
    new database created from the last one with ``CREATE DATABASE ... TEMPLATE`` (a file copy,
    ~1 s), so test modules that need the same night share one build, and each starts from the same
    clean state.

    Parameters
    ----------
    pg_server, template_db
        The conftest fixtures.
    n_frames : int, optional
        As in :func:`load_night`.
    steps : sequence of str
        Keys of :data:`NIGHT_STEPS`, run in this order (e.g. ``("associate", "movers8")``).

    Returns
    -------
    url : str
    info : dict
        What :func:`load_night` returned when the template was made.
    """
    unknown = [k for k in steps if k not in NIGHT_STEPS]
    if unknown:
        raise KeyError(f"night_db_url: unknown step(s) {unknown}; known: {sorted(NIGHT_STEPS)}")
    name, info = _night_template(pg_server, template_db, n_frames, tuple(steps))
    return create_database(pg_server, name), info
