"""SCAMP merged catalogues: proper motions of SCAMP's merged sources on their objects.

A real SCAMP run with ``-COMPUTE_PROPERMOTIONS Y`` on three reduced Lowell 42-inch frames
(30 min apart): the stars' proper motions are consistent with zero, and asteroid (5945), linked by
SCAMP across the three frames, gets its rate of ~9"/h as a proper motion in mas/yr.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from catdb.errors import InputError
from catdb.ingest.load import ingest_catalogs
from catdb.ingest.scamp_load import (
    file_stem,
    ingest_scamp_full,
    ingest_scamp_merged,
    read_scamp_merged,
    read_scamp_table,
)

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning", "ignore::astropy.units.UnitsWarning")


def _with_mjd_obs(ldac):
    """Give SCAMP the exposure's start time: the ``DATE`` card (file date) of LDAC_IMHEAD becomes ``MJD-OBS``.

    The Lowell headers have a date-only ``DATE-OBS`` (start time in ``UTCSTART``); SCAMP takes
    the epoch of a catalogue from ``MJD-OBS`` or ``DATE-OBS`` only, so without this every frame
    has the same epoch and SCAMP's proper motions are 0.  The card is replaced in place (same
    80 bytes): the file is otherwise byte-identical to SExtractor's output.
    """
    raw = bytearray(ldac.read_bytes())

    def card(key):
        i = raw.find(key.ljust(8).encode() + b"=")
        assert i >= 0, key
        return i, raw[i:i + 80].decode()

    _, date = card("DATE-OBS")
    _, utc = card("UTCSTART")
    day, hms = (re.search(r"'(\S+?)\s*'", c).group(1) for c in (date, utc))
    start = Time(f"{day}T{hms}", scale="utc")
    i, _ = card("DATE")
    raw[i:i + 80] = f"MJD-OBS = {start.mjd:20.12f} / start of exposure (DATE-OBS + UTCSTART)".ljust(80).encode()
    ldac.write_bytes(raw)
    return start


@pytest.fixture(scope="module")
def pm_run(tmp_path_factory):
    """Three reduced Lowell frames -> SExtractor LDAC (+ MJD-OBS) -> SCAMP with proper motions."""
    from tests.test_image_data import needs_data, reduced_frames
    from tests.test_ingest_scamp_load import _ref_ldac

    if needs_data.args[0]:
        pytest.skip(needs_data.kwargs["reason"])
    if shutil.which("scamp") is None or not any(shutil.which(b) for b in ("source-extractor", "sex")):
        pytest.skip("scamp / source-extractor not installed")
    from catdb.ingest.extract import extract

    frames = reduced_frames(tmp_path_factory)
    work = tmp_path_factory.mktemp("scamp_pm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cats = [extract(p, work / (file_stem(p) + ".ldac"), estimate_seeing=False) for p in frames["paths"]]
    starts = [_with_mjd_obs(c) for c in cats]
    _ref_ldac(work / "ref.ldac")
    # CROSSID_RADIUS 3": the asteroid moves ~2.4" between frames, more than the default 2"
    cmd = ["scamp", *[c.name for c in cats], "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", "ref.ldac",
           "-ASTREFCENT_KEYS", "XWIN_WORLD,YWIN_WORLD", "-ASTREFERR_KEYS", "ERRAWIN_WORLD,ERRBWIN_WORLD",
           "-MATCH", "N", "-SOLVE_ASTROM", "N", "-SOLVE_PHOTOM", "N", "-COMPUTE_PROPERMOTIONS", "Y",
           "-CROSSID_RADIUS", "3.0", "-CHECKPLOT_DEV", "NULL", "-CHECKPLOT_TYPE", "NONE", "-WRITE_XML", "N",
           "-FULLOUTCAT_TYPE", "FITS_LDAC", "-FULLOUTCAT_NAME", "full.cat",
           "-MERGEDOUTCAT_TYPE", "FITS_LDAC", "-MERGEDOUTCAT_NAME", "merged.cat",
           "-NTHREADS", "1", "-VERBOSE_TYPE", "QUIET"]
    res = subprocess.run(cmd, check=False, cwd=work, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # the same run, merged catalogue as ASCII_HEAD
    ascii_cmd = [{"FITS_LDAC": "ASCII_HEAD", "merged.cat": "merged_ascii.cat", "full.cat": "none.cat"}.get(a, a)
                 for a in cmd] + ["-HEADER_SUFFIX", ".head_ascii"]
    res = subprocess.run(ascii_cmd, check=False, cwd=work, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return {"cats": cats, "starts": starts, "work": work, "full": work / "full_1.cat",
            "merged": work / "merged_1.cat", "merged_ascii": work / "merged_ascii_1.cat"}


def test_merged_ascii_head_reads_as_fits_ldac(pm_run):
    lda, asc = read_scamp_merged(pm_run["merged"]), read_scamp_merged(pm_run["merged_ascii"])
    np.testing.assert_array_equal(asc.source, lda.source)
    np.testing.assert_allclose(asc.ra, lda.ra, atol=1e-8)
    np.testing.assert_allclose(asc.ra_err, lda.ra_err, rtol=1e-5)  # arcsec from deg in both formats
    np.testing.assert_allclose(asc.epoch, lda.epoch, atol=1e-9)
    np.testing.assert_array_equal(np.isnan(asc.pmra), np.isnan(lda.pmra))
    ok = np.isfinite(lda.pmra)
    np.testing.assert_allclose(asc.pmra[ok], lda.pmra[ok], rtol=1e-5, atol=10)  # ASCII: 7 digits
    np.testing.assert_allclose(asc.pmdec_err[ok], lda.pmdec_err[ok], rtol=1e-5, atol=10)


def _merged_file(path):
    """The merged catalogue as written by SCAMP, read with plain astropy: SOURCE_NUMBER -> row."""
    with fits.open(path) as hl:
        data = hl["LDAC_OBJECTS"].data
        units = {c.name: c.unit for c in hl["LDAC_OBJECTS"].columns}
        return {int(r["SOURCE_NUMBER"]): r for r in data}, units


def _objects(conn, run_id):
    return conn.execute("SELECT id, scamp_source, ra, dec, epoch, pmra, pmdec, pmra_err, pmdec_err, n_epochs "
                        "FROM object WHERE stage_run_id = %s ORDER BY scamp_source", (run_id,)).fetchall()


def _errors(conn, run_id):
    """scamp_source -> (ra_err, dec_err) [arcsec]."""
    return {r[0]: r[1:] for r in conn.execute("SELECT scamp_source, ra_err, dec_err FROM object "
                                             "WHERE stage_run_id = %s", (run_id,)).fetchall()}


def _mover(conn, run_id):
    """The object of asteroid (5945): the one linked to detections at its positions on the frames."""
    from tests.test_image_data import mover1_radec

    hits = []
    for eid, mjd in conn.execute("SELECT id, mjd_mid FROM exposure ORDER BY mjd_mid").fetchall():
        ra, dec = mover1_radec(mjd + 2400000.5)
        hits += [r[0] for r in conn.execute(
            "SELECT l.object_id FROM detection d JOIN detection_object l ON l.detection_id = d.id "
            "JOIN object o ON o.id = l.object_id WHERE o.stage_run_id = %s AND d.exposure_id = %s "
            "AND q3c_radial_query(d.ra, d.dec, %s, %s, 3.0 / 3600)", (run_id, eid, float(ra), float(dec)))]
    assert len(hits) == 3 and len(set(hits)) == 1, hits
    return hits[0]


def test_scamp_merged_proper_motions_on_objects(conn, pm_run):
    cats = pm_run["cats"]
    ids = [r.exposure_ids[0] for r in ingest_catalogs(conn, cats)]
    res = ingest_scamp_full(conn, pm_run["full"], catalogs=cats, merged_path=pm_run["merged"])
    rows, units = _merged_file(pm_run["merged"])
    assert units["PMALPHA_J2000"] == units["PMDELTAERR_J2000"] == "mas/yr" and units["EPOCH"] == "yr"
    assert res.n_merged == len(rows) > 1000
    objs = _objects(conn, res.run_id)
    assert len(objs) == res.n_objects > 1000
    # every object carries its merged source's values (SOURCE_NUMBER key), in the file's units
    errs = _errors(conn, res.run_id)
    n_pm = 0
    for _oid, src, ra, dec, epoch, pmra, pmdec, pmra_err, pmdec_err, _n_ep in objs:
        r = rows[src]
        assert ra == pytest.approx(r["ALPHA_J2000"], abs=1e-12) and dec == pytest.approx(r["DELTA_J2000"], abs=1e-12)
        assert epoch == pytest.approx(r["EPOCH"], abs=1e-9)
        assert errs[src][0] == pytest.approx((r["ERRA_WORLD"] * u.deg).to_value(u.arcsec), rel=1e-6)  # deg -> "
        assert errs[src][1] == pytest.approx((r["ERRB_WORLD"] * u.deg).to_value(u.arcsec), rel=1e-6)
        if r["NPOS_OK"] < 2:  # SCAMP fitted no motion (one position it trusts; 0 +- 0): NULL, not 0
            assert r["PMALPHA_J2000"] == r["PMALPHAERR_J2000"] == 0
            assert pmra is None and pmdec is None and pmra_err is None and pmdec_err is None
            continue
        n_pm += 1
        assert pmra == pytest.approx(r["PMALPHA_J2000"], rel=1e-6)
        assert pmdec == pytest.approx(r["PMDELTA_J2000"], rel=1e-6)
        assert pmra_err == pytest.approx(r["PMALPHAERR_J2000"], rel=1e-6)
        assert pmdec_err == pytest.approx(r["PMDELTAERR_J2000"], rel=1e-6)
    assert n_pm == res.n_pm > 500
    # SCAMP's epochs are Julian epochs of our exposures' mid-times: EPOCH of each full-catalogue row
    full = read_scamp_table(pm_run["full"])
    for k, eid in enumerate(ids, start=1):
        mjd = conn.execute("SELECT mjd_mid FROM exposure WHERE id = %s", (eid,)).fetchone()[0]
        ep = np.unique(np.asarray(full["EPOCH"])[np.asarray(full["CATALOG_NUMBER"]) == k])
        assert len(ep) == 1 and ep[0] == pytest.approx(Time(mjd, format="mjd").jyear, abs=1e-8)
    # asteroid (5945): one object over the three frames; SCAMP's proper motion is its rate
    oid = _mover(conn, res.run_id)
    _, src, ra, dec, epoch, pmra, pmdec, pmra_err, pmdec_err, n_ep = next(o for o in objs if o[0] == oid)
    assert n_ep == 3
    # ... the motion of its three linked detections (our RA/Dec, our mid-times), in mas/yr by astropy units
    det = np.array(conn.execute("SELECT e.mjd_mid, d.ra, d.dec FROM detection d JOIN detection_object l "
                                "ON l.detection_id = d.id JOIN exposure e ON e.id = d.exposure_id "
                                "WHERE l.object_id = %s ORDER BY e.mjd_mid", (oid,)).fetchall())
    vra = np.polyfit(det[:, 0], det[:, 1], 1)[0] * np.cos(np.radians(dec)) * u.deg / u.day
    vdec = np.polyfit(det[:, 0], det[:, 2], 1)[0] * u.deg / u.day
    assert pmra == pytest.approx(vra.to_value(u.mas / u.yr), abs=3 * pmra_err)
    assert pmdec == pytest.approx(vdec.to_value(u.mas / u.yr), abs=3 * pmdec_err)
    # ... ~9"/h: MANIFEST's +4.0, -8.4 "/h measured over 5.7 h; 1 mas/yr = 1/8766000 "/h (Julian year)
    rate_ra, rate_dec = (np.array([pmra, pmdec]) * u.mas / u.yr).to_value(u.arcsec / u.hour)
    assert (u.mas / u.yr).to(u.arcsec / u.hour) == pytest.approx(1 / (365.25 * 24 * 1000), rel=1e-12)
    assert 3.0 < rate_ra < 4.5 and -9.0 < rate_dec < -7.8
    assert np.hypot(rate_ra, rate_dec) == pytest.approx(9.3, rel=0.05)
    # it is the fastest source of the field by far; stars' motions are consistent with zero
    stars = np.array([(o[5], o[6], o[7], o[8]) for o in objs if o[5] is not None and o[9] == 3 and o[0] != oid])
    assert np.hypot(pmra, pmdec) > 10 * np.median(np.hypot(stars[:, 0], stars[:, 1]))
    assert np.median(np.abs(stars[:, 0] / stars[:, 2])) < 2 and np.median(np.abs(stars[:, 1] / stars[:, 3])) < 2
    st = conn.execute("SELECT counts FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0]
    assert st["proper_motions"] == n_pm and st["merged_sources"] == len(rows)


def test_merged_after_full_updates_by_key_and_reingest_does_not_duplicate(conn, pm_run):
    cats = pm_run["cats"]
    ingest_catalogs(conn, cats)
    full = ingest_scamp_full(conn, pm_run["full"], catalogs=cats)  # without merged: no proper motions yet
    assert conn.execute("SELECT count(*), count(pmra), count(scamp_source) FROM object WHERE stage_run_id = %s",
                        (full.run_id,)).fetchone() == (full.n_objects, 0, full.n_objects)
    links = conn.execute("SELECT count(*) FROM detection_object").fetchone()[0]
    m1 = ingest_scamp_merged(conn, pm_run["merged"], catalogs=cats)
    assert m1.full_run_id == full.run_id and m1.n_objects == full.n_objects and m1.n_pm > 500
    rows, _ = _merged_file(pm_run["merged"])
    objs = _objects(conn, full.run_id)
    assert sum(o[5] is not None for o in objs) == m1.n_pm
    for o in objs[::50]:
        r = rows[o[1]]
        assert o[2] == pytest.approx(r["ALPHA_J2000"], abs=1e-12) and o[4] == pytest.approx(r["EPOCH"], abs=1e-9)
        if o[5] is not None:
            assert o[5] == pytest.approx(r["PMALPHA_J2000"], rel=1e-6) and o[6] == pytest.approx(r["PMDELTA_J2000"],
                                                                                                 rel=1e-6)
    # again: same rows, same values; the first merged run is marked replaced
    m2 = ingest_scamp_merged(conn, pm_run["merged"], run_id=full.run_id)
    assert m2.n_objects == m1.n_objects
    assert _objects(conn, full.run_id) == objs
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == full.n_objects
    assert conn.execute("SELECT count(*) FROM detection_object").fetchone()[0] == links
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (m1.run_id,)).fetchone()[0] == "replaced"


def test_bad_merged_catalogues_are_refused_and_write_nothing(conn, pm_run, tmp_path):
    cats = pm_run["cats"]
    ingest_catalogs(conn, cats)
    full = ingest_scamp_full(conn, pm_run["full"], catalogs=cats)

    def snapshot():
        return (conn.execute("SELECT count(*), md5(string_agg(concat_ws(',', id, ra, pmra, epoch), ';' ORDER BY id)) "
                             "FROM object").fetchone(),
                conn.execute("SELECT count(*) FROM stage_run").fetchone()[0])

    before = snapshot()
    # the full catalogue given as the merged one: the missing column is named, with the file, on one line
    with pytest.raises(InputError) as e:
        ingest_scamp_merged(conn, pm_run["full"], catalogs=cats)
    assert "full_1.cat" in str(e.value) and "column PMALPHA_J2000 missing" in str(e.value)
    assert "SCAMP merged catalogue" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"full_1\.cat.*PMALPHA_J2000 missing"):
        ingest_scamp_full(conn, pm_run["full"], catalogs=cats, merged_path=pm_run["full"])
    # a merged catalogue without its proper-motion errors
    with fits.open(pm_run["merged"]) as hl:
        cols = [c for c in hl["LDAC_OBJECTS"].columns if c.name != "PMDELTAERR_J2000"]
        fits.HDUList([fits.PrimaryHDU(), hl["LDAC_IMHEAD"].copy(), fits.BinTableHDU.from_columns(
            cols, name="LDAC_OBJECTS")]).writeto(tmp_path / "no_pmerr.cat")
        # wrong HDU: the image header only, no object table
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(name="LDAC_IMHEAD")]).writeto(tmp_path / "nohdu.cat")
        # another run's merged catalogue (fewer sources): the first object not in it is named
        part = fits.BinTableHDU(hl["LDAC_OBJECTS"].data[:100], name="LDAC_OBJECTS")
        fits.HDUList([fits.PrimaryHDU(), hl["LDAC_IMHEAD"].copy(), part]).writeto(tmp_path / "other_run.cat")
    with pytest.raises(InputError, match=r"no_pmerr\.cat, PMDELTAERR_J2000: column PMDELTAERR_J2000 missing"):
        ingest_scamp_merged(conn, tmp_path / "no_pmerr.cat", catalogs=cats)
    with pytest.raises(InputError, match=r"nohdu\.cat: no LDAC_OBJECTS table"):
        read_scamp_merged(tmp_path / "nohdu.cat")
    assert snapshot() == before  # refused before anything was recorded
    with pytest.raises(InputError, match=r"other_run\.cat.*SOURCE_NUMBER \d+ of the objects of stage_run "
                                         rf"{full.run_id} is not in the merged catalogue"):
        ingest_scamp_merged(conn, tmp_path / "other_run.cat", catalogs=cats)
    with pytest.raises(InputError, match=r"other_run\.cat.*SOURCE_NUMBER \d+ of the full catalogue is not in"):
        ingest_scamp_full(conn, pm_run["full"], catalogs=cats, merged_path=tmp_path / "other_run.cat")
    after = snapshot()
    assert after[0] == before[0]  # objects untouched; the two refused runs are recorded as failed
    assert conn.execute("SELECT count(*) FROM stage_run WHERE status = 'failed' AND error LIKE %s",
                        ("%other_run.cat%",)).fetchone()[0] == 2


def test_cli_full_with_merged_then_merged_alone(fresh_db_url, pm_run, tmp_path):
    import click
    from click.testing import CliRunner

    from catdb.cli.ingest_scamp import scamp_command
    from catdb.cli.main import CatdbGroup
    from catdb.db.engine import connect

    @click.group(cls=CatdbGroup)
    def grp():
        pass

    grp.add_command(scamp_command)
    cats = [str(c) for c in pm_run["cats"]]
    with connect(fresh_db_url) as c:
        ingest_catalogs(c, cats)
    obj = {"url": fresh_db_url, "quiet": True}
    r = CliRunner().invoke(grp, ["scamp", "--no-heads", *cats, "--full", str(pm_run["full"]),
                                 "--merged", str(pm_run["merged"])], obj=obj)
    assert r.exit_code == 0, r.output
    assert "proper motions from" in r.output and "merged sources" in r.output
    with connect(fresh_db_url) as c:
        n_obj, n_pm = c.execute("SELECT count(*), count(pmra) FROM object").fetchone()
    assert n_obj > 1000 and n_pm > 500
    r = CliRunner().invoke(grp, ["scamp", "--no-heads", *cats, "--merged", str(pm_run["merged"])], obj=obj)
    assert r.exit_code == 0, r.output
    assert f"{n_obj} objects of stage_run" in r.output and f"{n_pm} with a proper motion" in r.output
    with connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*), count(pmra) FROM object").fetchone() == (n_obj, n_pm)
    r = CliRunner().invoke(grp, ["scamp", "--no-heads", *cats, "--merged", str(pm_run["full"])], obj=obj)
    assert r.exit_code == 1 and "full_1.cat" in r.output and "PMALPHA_J2000 missing" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(grp, ["scamp", "--help"], obj=obj)
    assert "--merged merged_1.cat" in r.output and "COMPUTE_PROPERMOTIONS" in r.output
