"""Stages qa-astrometry and qa-background on real data (LCO LDAC + Gaia DR2, raw Lowell frames)."""
import numpy as np
import pytest

from catdb.errors import StageError
from catdb.schema.tables import QUALITY_FLAGS
from catdb.stages import run_stage
from tests.helpers import REPO_DATA, TEST_DATA

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

LCO = TEST_DATA / "lco"
LOWELL = REPO_DATA / "lowell42-5945" / "science"
BIT_ASTROM, BIT_UNSOLVED, BIT_BKG = (QUALITY_FLAGS[k] for k in ("astrometric_outlier", "not_solved",
                                                                  "background_outlier"))


@pytest.fixture(scope="module")
def db_url(lco_gaia):
    """The module's database: a copy of conftest's ``lco_gaia`` (the LCO frame and Gaia DR2 as 'gaia-dr2')."""
    return lco_gaia[0]


@pytest.fixture(scope="module")
def ldac(lco_gaia):
    """Id of the exposure of the real LDAC catalogue (band 'w')."""
    return lco_gaia[1]


def copy_exposure(conn, eid, path, dra_arcsec="0", ddec_arcsec="0", background="background", where="true"):
    """A new exposure holding the detections of ``eid`` with SQL expressions for shifts and background."""
    new = conn.execute(
        "INSERT INTO exposure (path, hdu, image_type, band, filter, mjd_mid, night, site_lon, ra_center, dec_center, "
        "radius, fwhm, exptime) SELECT %s, 0, image_type, band, filter, mjd_mid, night, site_lon, ra_center, "
        "dec_center, radius, fwhm, exptime FROM exposure WHERE id = %s RETURNING id", (path, eid)).fetchone()[0]
    conn.execute(
        f"INSERT INTO detection (exposure_id, number, ra, dec, flags, snr, flux_auto, fluxerr_auto, background, fwhm) "
        f"SELECT %s, number, ra + ({dra_arcsec}) / 3600.0 / cos(radians(dec)), dec + ({ddec_arcsec}) / 3600.0, "
        f"flags, snr, flux_auto, fluxerr_auto, {background}, fwhm FROM detection WHERE exposure_id = %s AND ({where})",
        (new, eid))
    return new


def qa(conn, eid, prefix):
    return {m: (v, o) for m, v, o in conn.execute(
        "SELECT metric, value, is_outlier FROM exposure_qa WHERE exposure_id = %s AND metric LIKE %s",
        (eid, prefix + "%")).fetchall()}


def flags(conn, eid):
    return conn.execute("SELECT quality_flags FROM exposure WHERE id = %s", (eid,)).fetchone()[0]


# ----------------------------------------------------------------------------------- astrometry
def test_astrometry_real_frame_matches_independent_crossmatch(conn, ldac):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    res = run_stage("qa-astrometry", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2"})
    m = qa(conn, ldac, "astrom_")
    # the same numbers from an astropy nearest-neighbour match (snr >= 10 default, FLAGS = 0, 2")
    det = np.array(conn.execute("SELECT ra, dec FROM detection WHERE exposure_id = %s AND flags = 0 AND snr >= 10",
                                (ldac,)).fetchall())
    ref = np.array(conn.execute("SELECT ra, dec FROM refcat_source WHERE catalog = 'gaia-dr2'").fetchall())
    cd, cr = SkyCoord(det[:, 0], det[:, 1], unit="deg"), SkyCoord(ref[:, 0], ref[:, 1], unit="deg")
    idx, sep, _ = cd.match_to_catalog_sky(cr)
    ok = sep < 2 * u.arcsec
    s = sep.arcsec[ok]
    dra, ddec = cr[idx[ok]].spherical_offsets_to(cd[ok])
    print(f"qa-astrometry LDAC vs Gaia DR2: n={m['astrom_n_matched'][0]:.0f} median sep "
          f"{m['astrom_sep_median'][0]:.3f}\" scatter {m['astrom_sep_scatter'][0]:.3f}\"")
    assert m["astrom_n_matched"][0] == ok.sum() >= 50
    assert m["astrom_sep_median"][0] == pytest.approx(np.median(s), abs=1e-6)
    assert m["astrom_sep_median"][0] < 1.0  # a SCAMP-solved frame
    assert m["astrom_sep_scatter"][0] == pytest.approx(1.4826 * np.median(np.abs(s - np.median(s))), rel=1e-4)
    assert m["astrom_offset_ra"][0] == pytest.approx(np.median(dra.arcsec), abs=1e-3)
    assert m["astrom_offset_dec"][0] == pytest.approx(np.median(ddec.arcsec), abs=1e-3)
    assert not any(o for _, o in m.values()) and flags(conn, ldac) & (BIT_ASTROM | BIT_UNSOLVED) == 0
    # provenance, and a re-run replaces its rows
    assert conn.execute("SELECT DISTINCT stage_run_id FROM exposure_qa WHERE exposure_id = %s AND metric LIKE "
                        "'astrom%%'", (ldac,)).fetchall() == [(res.run_id,)]
    res2 = run_stage("qa-astrometry", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2"})
    rows = conn.execute("SELECT count(*), max(stage_run_id) FROM exposure_qa WHERE exposure_id = %s "
                        "AND metric LIKE 'astrom%%'", (ldac,)).fetchone()
    assert rows == (5, res2.run_id)
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0] == "replaced"
    conn.commit()


def test_astrometry_outlier_and_unsolved_flags(conn, ldac):
    conn.execute("SELECT setseed(0.25)")
    good = [copy_exposure(conn, ldac, f"astrom-good-{k}", ddec_arcsec=str(0.03 * k)) for k in range(5)]
    bad = copy_exposure(conn, ldac, "astrom-bad", dra_arcsec="(random() - 0.5) * 1.6",
                        ddec_arcsec="(random() - 0.5) * 1.6")
    lost = copy_exposure(conn, ldac, "astrom-lost", ddec_arcsec="3600")  # 1 deg off: no match
    conn.commit()
    where = "e.path LIKE 'astrom-%'"
    run_stage("qa-astrometry", conn=conn, where=where, params={"refcat": "gaia-dr2"})
    seps = {e: qa(conn, e, "astrom_")["astrom_sep_median"] for e in good + [bad]}
    assert seps[bad][0] > max(seps[g][0] for g in good) + 0.1
    assert seps[bad][1] and not any(seps[g][1] for g in good)
    assert flags(conn, bad) & BIT_ASTROM and not flags(conn, bad) & BIT_UNSOLVED
    assert all(flags(conn, g) & (BIT_ASTROM | BIT_UNSOLVED) == 0 for g in good)
    lost_qa = qa(conn, lost, "astrom_")
    assert lost_qa["astrom_n_matched"][0] == 0 and lost_qa["astrom_sep_median"][0] is None
    assert flags(conn, lost) & BIT_UNSOLVED and not flags(conn, lost) & BIT_ASTROM
    # the group is the night derived from mjd_mid and site_lon (LCO cpt, 2016-04-28 20:11 UT)
    assert {r[0] for r in conn.execute("SELECT group_key FROM exposure_qa WHERE exposure_id = ANY(%s)",
                                       (good,)).fetchall()} == {"2016-04-28"}
    # fix the bad frame's positions: a re-run clears its flag
    conn.execute("DELETE FROM detection WHERE exposure_id = %s", (bad,))
    conn.execute("INSERT INTO detection (exposure_id, number, ra, dec, flags, snr) SELECT %s, number, ra, dec, "
                 "flags, snr FROM detection WHERE exposure_id = %s", (bad, ldac))
    run_stage("qa-astrometry", conn=conn, where=where, params={"refcat": "gaia-dr2"})
    assert flags(conn, bad) & BIT_ASTROM == 0 and not qa(conn, bad, "astrom_")["astrom_sep_median"][1]
    assert conn.execute("SELECT count(*) FROM exposure_qa WHERE exposure_id = ANY(%s)",
                        (good + [bad, lost],)).fetchone()[0] == 7 * 5
    conn.commit()


def test_astrometry_applies_proper_motion(conn, ldac):
    # Gaia stars moved back to epoch 2000 along a large proper motion: only the motion brings them home
    conn.execute("SELECT setseed(0.5)")
    conn.execute(
        "INSERT INTO refcat_source (catalog, source_id, ra, dec, epoch, pmra, pmdec, mags, mag_errs) "
        "SELECT 'gaia-pm', source_id, ra - pmra_ * dt / 3.6e6 / cos(radians(dec)), dec - pmdec_ * dt / 3.6e6, "
        "2000.0, pmra_, pmdec_, mags, mag_errs FROM (SELECT r.*, 150 + 100 * random() AS pmra_, "
        "-200 + 50 * random() AS pmdec_, 2000 + (e.mjd_mid - 51544.5) / 365.25 - 2000 AS dt "
        "FROM refcat_source r, exposure e WHERE r.catalog = 'gaia-dr2' AND e.id = %s) s", (ldac,))
    conn.commit()
    run_stage("qa-astrometry", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2"})
    ref = qa(conn, ldac, "astrom_")
    res = run_stage("qa-astrometry", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-pm"})
    pm = qa(conn, ldac, "astrom_")
    assert res.counts["exposures_with_pm"] == 1
    assert pm["astrom_n_matched"][0] == ref["astrom_n_matched"][0]
    for k in ("astrom_sep_median", "astrom_offset_ra", "astrom_offset_dec"):
        assert pm[k][0] == pytest.approx(ref[k][0], abs=2e-3), k
    conn.commit()


def test_astrometry_bad_refcat_writes_nothing(conn, ldac):
    before = conn.execute("SELECT count(*), sum(stage_run_id) FROM exposure_qa").fetchone()
    with pytest.raises(StageError, match="no reference catalogue named 'ucac9'.*gaia-dr2"):
        run_stage("qa-astrometry", conn=conn, params={"refcat": "ucac9"})
    assert conn.execute("SELECT count(*), sum(stage_run_id) FROM exposure_qa").fetchone() == before
    st = conn.execute("SELECT status, error FROM stage_run WHERE stage = 'qa-astrometry' ORDER BY id DESC LIMIT 1"
                      ).fetchone()
    assert st[0] == "failed" and "ucac9" in st[1]
    conn.commit()


# ----------------------------------------------------------------------------------- background
@pytest.mark.spatial_backends("q3c")  # qa-background: pixels and catalogues, no spatial SQL
def test_background_from_raw_lowell_pixels(conn):
    from astropy.io import fits

    from astropy.nddata import CCDData

    from catdb.algorithms.background import background_stats
    from catdb.algorithms.reduce import overscan_trim
    from catdb.ingest.load import ingest_images

    paths = sorted(LOWELL.glob("*.fits.fz"))[1:4]
    ids = [r.exposure_ids[0] for r in ingest_images(conn, paths)]
    res = run_stage("qa-background", conn=conn, where="e.path LIKE '%%lowell42%%'", params={"workers": 2})
    assert res.counts["from_pixels"] == 3 and res.counts["from_catalog"] == 0
    # the first frame measured directly: overscan removed, trimmed to TRIMSEC, sources masked
    path, hdu = conn.execute("SELECT path, hdu FROM exposure WHERE id = %s", (ids[0],)).fetchone()
    with fits.open(path) as hl:
        img = overscan_trim(CCDData(hl[hdu].data.astype(np.float32), unit="adu", meta=hl[hdu].header)).data
    assert img.shape == (1370, 1365)
    direct = background_stats(img)
    m = qa(conn, ids[0], "bkg_")
    for k in ("mean", "median", "std", "mad"):
        assert m[f"bkg_{k}"][0] == pytest.approx(direct[k], rel=1e-9), k
    assert m["bkg_n_pixels"][0] == direct["n_pixels"] and "bkg_n_sources" not in m
    rows = conn.execute("SELECT id, bkg_median, bkg_std FROM exposure WHERE id = ANY(%s) ORDER BY id",
                        (ids,)).fetchall()
    for eid, med, std in rows:
        print(f"qa-background Lowell exposure {eid}: median {med:.1f} ADU, std {std:.2f} ADU")
        assert med == qa(conn, eid, "bkg_")["bkg_median"][0]
        # overscan-subtracted sky of a 300 s VR frame: positive, and noise near sqrt(sky/gain) (gain 4.95)
        assert med > 0 and 0.5 < std / np.sqrt(med / 4.95) < 3
    conn.commit()


@pytest.mark.spatial_backends("q3c")  # qa-background: pixels and catalogues, no spatial SQL
def test_background_catalogue_fallback_and_two_sided_outliers(conn, ldac):
    from catdb.algorithms.robust import robust_stats

    normal = [copy_exposure(conn, ldac, f"bkg-copy-{k}", background=f"background + {k}") for k in range(6)]
    bright = copy_exposure(conn, ldac, "bkg-bright", background="background + 400")
    dark = copy_exposure(conn, ldac, "bkg-dark", background="background - 300")
    conn.commit()
    res = run_stage("qa-background", conn=conn, where="e.path LIKE 'bkg-%%'", params={"group": "all"})
    assert res.counts["from_catalog"] == 8 and res.counts["from_pixels"] == 0
    direct = robust_stats(np.array(conn.execute("SELECT background FROM detection WHERE exposure_id = %s",
                                                (normal[0],)).fetchall(), dtype=float).ravel())
    m = qa(conn, normal[0], "bkg_")
    for k in ("mean", "median", "std", "mad"):
        assert m[f"bkg_{k}"][0] == pytest.approx(direct[k], rel=1e-6), k
    assert m["bkg_n_sources"][0] == 974
    assert m["bkg_median"][0] == pytest.approx(338.7, abs=0.5)  # SExtractor BACKGROUND of the real frame
    assert flags(conn, bright) & BIT_BKG and flags(conn, dark) & BIT_BKG
    assert qa(conn, bright, "bkg_")["bkg_median"][1] and qa(conn, dark, "bkg_")["bkg_median"][1]
    assert all(flags(conn, e) & BIT_BKG == 0 for e in normal)
    # the astrometric bits of other stages are left alone; a re-run without the outliers clears nothing else
    res2 = run_stage("qa-background", conn=conn, where="e.path LIKE 'bkg-copy-%%'", params={"group": "all"})
    assert res2.counts["background_outlier"] == 0
    assert flags(conn, bright) & BIT_BKG  # not selected: untouched
    assert conn.execute("SELECT count(*) FROM exposure_qa WHERE exposure_id = ANY(%s) AND metric LIKE 'bkg%%'",
                        (normal + [bright, dark],)).fetchone()[0] == 8 * 5
    conn.commit()


@pytest.mark.spatial_backends("q3c")  # qa-background: pixels and catalogues, no spatial SQL
def test_background_prefers_reduced_product(conn, tmp_path):
    """A 'reduced' image_product of the exposure is measured instead of the raw file (no overscan step)."""
    from astropy.io import fits

    from astropy.nddata import CCDData

    from catdb.algorithms.background import background_stats
    from catdb.algorithms.reduce import overscan_trim
    from catdb.ingest.load import ingest_images
    from catdb.db.provenance import finish_run, start_run

    raw = sorted(LOWELL.glob("*.fits.fz"))[4]
    eid = ingest_images(conn, [raw])[0].exposure_ids[0]
    hdu = conn.execute("SELECT hdu FROM exposure WHERE id = %s", (eid,)).fetchone()[0]
    with fits.open(raw) as hl:
        # a stand-in for a reduced frame: the real frame trimmed, with a flat 30% sensitivity change
        img = overscan_trim(CCDData(hl[hdu].data.astype(np.float32), unit="adu", meta=hl[hdu].header)).data / 1.3
    out = tmp_path / "reduced.fits"
    fits.PrimaryHDU(img.astype(np.float32)).writeto(out)
    run = start_run(conn, "test-reduce", {})
    conn.execute("INSERT INTO image_product (exposure_id, kind, path, hdu, stage_run_id) VALUES (%s, 'reduced', %s, 0, "
                 "%s)", (eid, str(out), run))
    finish_run(conn, run)
    conn.commit()
    run_stage("qa-background", conn=conn, where=f"e.id = {eid}")
    direct = background_stats(fits.getdata(out).astype(float))
    m = qa(conn, eid, "bkg_")
    assert m["bkg_median"][0] == pytest.approx(direct["median"], rel=1e-6)
    assert m["bkg_std"][0] == pytest.approx(direct["std"], rel=1e-6)
    conn.commit()


# ----------------------------------------------------------------------------------- source counts
def test_few_sources_flags_the_clouded_exposure_only(fresh_db_url):
    """exposure-summary's source-count rule: seven copies of the real LCO catalogue keeping ~90 % of its
    detections each, one 'through cloud' keeping only its brightest ~15 %, one never extracted (no
    catalogue): only the clouded one gets few_sources; the unextracted one is not judged."""
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_catalogs

    bit = QUALITY_FLAGS["few_sources"]
    with connect(fresh_db_url) as c:
        src = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
        snr85 = c.execute("SELECT percentile_cont(0.85) WITHIN GROUP (ORDER BY snr) FROM detection "
                          "WHERE exposure_id = %s", (src,)).fetchone()[0]
        clear = [copy_exposure(c, src, f"/x/clear{k}.fits", where=f"mod(number, 10) <> {k}") for k in range(7)]
        cloud = copy_exposure(c, src, "/x/cloud.fits", where=f"snr > {snr85}")
        never = copy_exposure(c, src, "/x/never.fits", where="false")
        c.execute("DELETE FROM exposure WHERE id = %s", (src,))
        c.execute("UPDATE exposure SET quality_flags = %s WHERE id = %s", (bit, clear[0]))  # stale: cleared
        c.commit()
        res = run_stage("exposure-summary", conn=c)
        assert res.counts["few_sources"] == 1 and res.counts["few_sources_exposures"] == [cloud]
        assert res.counts["not_extracted"] == 1
        assert flags(c, cloud) & bit and not any(flags(c, e) & bit for e in clear + [never])
        n = dict(c.execute("SELECT exposure_id, value FROM exposure_qa WHERE metric = 'n_detections'").fetchall())
        assert sorted(n) == sorted(clear + [cloud])  # the exposure without a catalogue has no row
        assert n[cloud] < 0.2 * min(n[e] for e in clear)
        out = dict(c.execute("SELECT exposure_id, is_outlier FROM exposure_qa WHERE metric = 'n_detections'"))
        assert out[cloud] and not any(out[e] for e in clear)
        # a re-run replaces its rows and gives the same flags
        run_stage("exposure-summary", conn=c)
        assert c.execute("SELECT count(*) FROM exposure_qa WHERE metric = 'n_detections'").fetchone()[0] == 8
        assert flags(c, cloud) & bit
        c.commit()
