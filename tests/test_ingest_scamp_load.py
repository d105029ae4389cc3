"""SCAMP results into the database: real .head solutions applied to ingested exposures, and
associations from a real SCAMP run on three reduced Lowell 42-inch frames."""
from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from catdb.errors import InputError
from catdb.ingest.load import ingest_catalogs
from catdb.ingest.scamp import read_scamp_head, read_scamp_xml
from catdb.ingest.scamp_load import apply_scamp_solution, file_stem, ingest_scamp_full, read_scamp_table
from catdb.ingest.sextractor import read_catalogs
from tests.helpers import REPO_DATA, TEST_DATA

LCO = TEST_DATA / "lco"
pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning")


def write_ldac(path, header: fits.Header, table) -> None:
    """A FITS_LDAC file: LDAC_IMHEAD (the header as one string of 80-char cards) + LDAC_OBJECTS."""
    cards = "".join(str(c) for c in header.cards) + "END".ljust(80)
    imhead = fits.BinTableHDU.from_columns(
        [fits.Column(name="Field Header Card", format=f"{len(cards)}A", array=np.array([cards]))], name="LDAC_IMHEAD")
    objects = fits.BinTableHDU(table, name="LDAC_OBJECTS")
    fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(path, overwrite=True)


def lco_catalogue_for(head_path, out, naxis):
    """The real LCO LDAC catalogue (974 detections) with its image size set to the .head's frame."""
    cat = read_catalogs(LCO / "ldac_test_catalog.fits")[0]
    hdr = cat.header.copy()
    hdr["NAXIS1"], hdr["NAXIS2"] = naxis
    with fits.open(LCO / "ldac_test_catalog.fits") as hl:
        write_ldac(out, hdr, hl["LDAC_OBJECTS"].data)
    return out


def det_arrays(conn, eid):
    return np.array(conn.execute("SELECT xwin, ywin, ra, dec, stage_run_id FROM detection WHERE exposure_id = %s "
                                 "ORDER BY id", (eid,)).fetchall(), dtype=float)


def exposure_row(conn, eid):
    return conn.execute("SELECT ra_center, dec_center, radius, corners, wcs_header, pixscale FROM exposure "
                        "WHERE id = %s", (eid,)).fetchone()


def test_file_stem_pairs_head_with_catalogue_and_image():
    assert file_stem("/a/frame.head") == file_stem("frame.cat") == file_stem("frame.ldac") == "frame"
    assert file_stem("/x/20190326.0129.fits.fz") == file_stem("20190326.0129.head") == "20190326.0129"


def test_scamp_head_replaces_wcs_and_positions(conn, tmp_path):
    head_src = LCO / "example_scamp.head"
    head = read_scamp_head(head_src)
    naxis = (int(round(2 * head["CRPIX1"])) - 1, int(round(2 * head["CRPIX2"])) - 1)  # CRPIX ~ frame centre
    shutil.copy(head_src, tmp_path / "example_scamp.head")
    cat = lco_catalogue_for(head_src, tmp_path / "example_scamp.ldac", naxis)
    eid = ingest_catalogs(conn, [cat])[0].exposure_ids[0]
    before = det_arrays(conn, eid)
    old = exposure_row(conn, eid)
    assert old[0] == pytest.approx(219.8, abs=0.5)  # the LCO field (centre shifted by the new NAXIS)

    res = apply_scamp_solution(conn, tmp_path / "example_scamp.head")  # matched by name: example_scamp.ldac
    assert res.exposure_ids == [eid] and res.n_detections == 974
    after = det_arrays(conn, eid)
    # recomputed RA/Dec are astropy's WCS(.head) at the same (1-based) pixels
    w = WCS(head)
    sky = w.pixel_to_world(after[:, 0] - 1, after[:, 1] - 1)
    np.testing.assert_allclose(after[:, 2], sky.ra.deg, atol=1e-9)
    np.testing.assert_allclose(after[:, 3], sky.dec.deg, atol=1e-9)
    np.testing.assert_array_equal(after[:, :2], before[:, :2])   # pixels untouched
    np.testing.assert_array_equal(after[:, 4], before[:, 4])     # provenance stays the ingest's
    # the footprint moved to the .head's field: centre, corners and radius from the new WCS
    new = exposure_row(conn, eid)
    c = w.pixel_to_world((naxis[0] - 1) / 2, (naxis[1] - 1) / 2)
    assert new[0] == pytest.approx(c.ra.deg, abs=1e-9) and new[1] == pytest.approx(c.dec.deg, abs=1e-9)
    corner = w.pixel_to_world(-0.5, -0.5)
    assert new[3][0] == pytest.approx(corner.ra.deg, abs=1e-9) and new[3][1] == pytest.approx(corner.dec.deg, abs=1e-9)
    scale = np.sqrt(abs(np.linalg.det(w.wcs.cd))) * 3600
    assert new[5] == pytest.approx(scale, rel=1e-6)
    assert new[2] == pytest.approx(np.hypot(*naxis) / 2 * scale / 3600, rel=1e-3)
    assert "CRVAL1" in new[4] and "178.3286919" in new[4]
    # every detection inside the new footprint (q3c on the database side)
    assert conn.execute("SELECT count(*) FROM detection d JOIN exposure e ON e.id = d.exposure_id WHERE e.id = %s "
                        "AND q3c_join(e.ra_center, e.dec_center, d.ra, d.dec, e.radius)", (eid,)).fetchone()[0] == 974
    # audit trail: the run records the old WCS and how far positions moved (tens of degrees here)
    st = conn.execute("SELECT stage, status, counts, input_ids FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()
    assert st[0] == "ingest-scamp" and st[1] == "ok" and st[3] == [eid]
    assert st[2]["old_wcs"][str(eid)] == old[4]
    assert st[2]["detection"] == 974 and st[2]["shift_arcsec"][str(eid)]["median"] > 30 * 3600


def test_tpv_head_by_catalogue_path_with_xml_qa_and_rerun(conn, tmp_path):
    head_src = LCO / "example_externcat_scamp_tpv.head"
    head = read_scamp_head(head_src)
    naxis = (int(round(2 * head["CRPIX1"])) - 1, int(round(2 * head["CRPIX2"])) - 1)
    cat = lco_catalogue_for(head_src, tmp_path / "ldac_test_catalog.fits", naxis)
    eid = ingest_catalogs(conn, [cat])[0].exposure_ids[0]
    res = apply_scamp_solution(conn, head_src, catalog_path=cat, xml_path=LCO / "example_scamp.xml")
    after = det_arrays(conn, eid)
    assert head["CTYPE1"] == "RA---TPV"
    w = WCS(head)  # astropy/WCSLIB evaluate TPV as TAN + polynomial distortion
    sky = w.pixel_to_world(after[:, 0] - 1, after[:, 1] - 1)
    np.testing.assert_allclose(after[:, 2], sky.ra.deg, atol=1e-9)
    np.testing.assert_allclose(after[:, 3], sky.dec.deg, atol=1e-9)
    # the TPV terms matter: a plain TAN with the same CD matrix is off by arcseconds at the edges
    h_tan = head.copy()
    h_tan["CTYPE1"], h_tan["CTYPE2"] = "RA---TAN", "DEC--TAN"
    for k in [k for k in h_tan if k.startswith("PV")]:
        del h_tan[k]
    tan = WCS(h_tan).pixel_to_world(after[:, 0] - 1, after[:, 1] - 1)
    assert np.max(sky.separation(tan).arcsec) > 1.0
    assert "PV1_10" in exposure_row(conn, eid)[4]
    # SCAMP's per-catalogue statistics in exposure_qa (the XML's row for ldac_test_catalog.fits)
    rep = read_scamp_xml(LCO / "example_scamp.xml").fields
    row = rep[[str(n) for n in rep["Catalog_Name"]].index("ldac_test_catalog.fits")]
    qa = dict(conn.execute("SELECT metric, value FROM exposure_qa WHERE exposure_id = %s", (eid,)).fetchall())
    sig = np.asarray(row["AstromSigma_Reference"], dtype=float)
    assert qa["scamp_sigma_ref"] == pytest.approx(np.hypot(*sig), rel=1e-6)
    assert qa["scamp_sigma_ref_dec"] == pytest.approx(sig[1], rel=1e-6)
    assert qa["scamp_as_contrast"] == pytest.approx(float(row["AS_Contrast"]), rel=1e-6)
    assert qa["scamp_ndets_ref"] == int(row["NDeg_Reference"])
    assert res.n_qa == len(qa)
    # applying it again: same positions, QA replaced not duplicated, the earlier run marked replaced
    res2 = apply_scamp_solution(conn, head_src, exposure_id=eid, xml_path=LCO / "example_scamp.xml")
    np.testing.assert_allclose(det_arrays(conn, eid)[:, 2:4], after[:, 2:4], atol=1e-12)
    assert res2.shift_max_arcsec < 1e-6
    assert conn.execute("SELECT count(*) FROM exposure_qa WHERE exposure_id = %s", (eid,)).fetchone()[0] == len(qa)
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0] == "replaced"


def test_head_matching_no_exposure_is_refused_and_changes_nothing(conn, tmp_path):
    stray = tmp_path / "nosuchframe.head"
    shutil.copy(LCO / "example_scamp.head", stray)
    eid = ingest_catalogs(conn, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
    snap = conn.execute("SELECT md5(string_agg(ra::text || dec::text, ',' ORDER BY id)) FROM detection").fetchone()
    expo = conn.execute("SELECT md5(string_agg(coalesce(wcs_header, ''), ',' ORDER BY id)) FROM exposure").fetchone()
    with pytest.raises(InputError, match=r"nosuchframe\.head.*matches no exposure.*nosuchframe"):
        apply_scamp_solution(conn, stray)
    with pytest.raises(InputError, match="exposure 999999 does not exist"):
        apply_scamp_solution(conn, stray, exposure_id=999999)
    # a two-extension .head for a one-extension exposure
    two = tmp_path / "two.head"
    two.write_text((LCO / "example_scamp.head").read_text(encoding="latin-1") * 2, encoding="latin-1")
    with pytest.raises(InputError, match=r"two\.head.*2 header blocks.*1 exposures"):
        apply_scamp_solution(conn, two, exposure_id=eid)
    assert conn.execute("SELECT md5(string_agg(ra::text || dec::text, ',' ORDER BY id)) FROM detection"
                        ).fetchone() == snap
    assert conn.execute("SELECT md5(string_agg(coalesce(wcs_header, ''), ',' ORDER BY id)) FROM exposure"
                        ).fetchone() == expo
    assert conn.execute("SELECT count(*) FROM stage_run WHERE stage = 'ingest-scamp' AND status = 'failed' "
                        "AND error LIKE %s", ("%.head%",)).fetchone()[0] == 3


# --------------------------------------------------------------------------- a real SCAMP run
def _ref_ldac(path):
    """SCAMP reference catalogue (FITS_LDAC) from the bundled Tycho-2 stars around the Lowell field."""
    t = Table.read(REPO_DATA / "tycho2" / "tycho2_lowell_field.csv")
    n = len(t)
    hdr = fits.Header()
    hdr["COMMENT"] = "Tycho-2 subset (catdb data/tycho2), epoch 1991.25"
    cols = [fits.Column(name="XWIN_WORLD", format="1D", unit="deg", array=np.asarray(t["ra_deg"], float)),
            fits.Column(name="YWIN_WORLD", format="1D", unit="deg", array=np.asarray(t["dec_deg"], float)),
            fits.Column(name="ERRAWIN_WORLD", format="1E", unit="deg", array=np.full(n, 0.1 / 3600)),
            fits.Column(name="ERRBWIN_WORLD", format="1E", unit="deg", array=np.full(n, 0.1 / 3600)),
            fits.Column(name="MAG", format="1E", unit="mag", array=np.asarray(t["mag_vt"], float)),
            fits.Column(name="MAGERR", format="1E", unit="mag", array=np.full(n, 0.05)),
            fits.Column(name="OBSDATE", format="1D", unit="yr", array=np.full(n, 1991.25)),
            fits.Column(name="FLAGS", format="1I", array=np.zeros(n, dtype=np.int16))]
    write_ldac(path, hdr, fits.BinTableHDU.from_columns(cols).data)
    return path


def _scamp(workdir, cats, full_type, suffix):
    cmd = ["scamp", *[c.name for c in cats],
           "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", "ref.ldac",
           "-ASTREFCENT_KEYS", "XWIN_WORLD,YWIN_WORLD", "-ASTREFERR_KEYS", "ERRAWIN_WORLD,ERRBWIN_WORLD",
           "-MATCH", "N", "-SOLVE_ASTROM", "N", "-SOLVE_PHOTOM", "N", "-CHECKPLOT_DEV", "NULL",
           "-CHECKPLOT_TYPE", "NONE", "-WRITE_XML", "Y", "-XML_NAME", f"scamp{suffix}.xml",
           "-FULLOUTCAT_TYPE", full_type, "-FULLOUTCAT_NAME", f"full{suffix}.cat",
           "-MERGEDOUTCAT_TYPE", full_type, "-MERGEDOUTCAT_NAME", f"merged{suffix}.cat",
           "-NTHREADS", "1", "-VERBOSE_TYPE", "QUIET"]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return workdir / f"full{suffix}_1.cat", workdir / f"merged{suffix}_1.cat", workdir / f"scamp{suffix}.xml"


@pytest.fixture(scope="module")
def scamp_run(tmp_path_factory):
    """Three reduced Lowell frames -> SExtractor LDAC -> SCAMP (full/merged catalogues, .head, XML)."""
    from tests.test_image_data import needs_data, reduced_frames

    if needs_data.args[0]:
        pytest.skip(needs_data.kwargs["reason"])
    if shutil.which("scamp") is None or not any(shutil.which(b) for b in ("source-extractor", "sex")):
        pytest.skip("scamp / source-extractor not installed")
    from catdb.ingest.extract import extract

    frames = reduced_frames(tmp_path_factory)
    work = tmp_path_factory.mktemp("scamp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cats = [extract(p, work / (file_stem(p) + ".ldac"), estimate_seeing=False) for p in frames["paths"]]
    _ref_ldac(work / "ref.ldac")
    ldac = _scamp(work, cats, "FITS_LDAC", "")
    ascii_ = _scamp(work, cats, "ASCII_HEAD", "_ascii")
    return dict(cats=cats, work=work, full=ldac[0], merged=ldac[1], xml=ldac[2], full_ascii=ascii_[0])


def test_scamp_run_heads_and_xml_applied(conn, scamp_run):
    cats = scamp_run["cats"]
    ids = [r.exposure_ids[0] for r in ingest_catalogs(conn, cats)]
    before = {e: det_arrays(conn, e) for e in ids}
    for c, e in zip(cats, ids):
        res = apply_scamp_solution(conn, c.with_suffix(".head"), xml_path=scamp_run["xml"])
        assert res.exposure_ids == [e]
        # SCAMP kept the images' own TAN+TPV (SOLVE_ASTROM N): positions agree with SExtractor's
        # ALPHAWIN/DELTAWIN computed from that WCS to well under a milliarcsecond
        assert res.shift_max_arcsec < 1e-3
        after = det_arrays(conn, e)
        np.testing.assert_array_equal(after[:, :2], before[e][:, :2])
        qa = dict(conn.execute("SELECT metric, value FROM exposure_qa WHERE exposure_id = %s", (e,)).fetchall())
        fields = read_scamp_xml(scamp_run["xml"]).fields
        row = fields[[str(n) for n in fields["Catalog_Name"]].index(c.name)]
        assert qa["scamp_ndetect"] == int(row["NDetect"]) > 500
        assert "scamp_sigma_int" in qa and 0 < qa["scamp_sigma_int"] < 1.0  # arcsec, stars between frames
        # the few Tycho-2 stars matched nothing: SCAMP's 0 "RMS about the reference" is not stored as a value
        assert qa["scamp_ndets_ref"] == int(row["NDeg_Reference"])
        if qa["scamp_ndets_ref"] == 0:
            assert "scamp_sigma_ref" not in qa and "scamp_chi2_ref" not in qa


def test_scamp_full_catalogue_links_the_same_star_across_exposures(conn, scamp_run):
    cats = scamp_run["cats"]
    ids = [r.exposure_ids[0] for r in ingest_catalogs(conn, cats)]  # unchanged: already loaded
    full = read_scamp_table(scamp_run["full"])
    ours = np.asarray(full["CATALOG_NUMBER"]) > 0
    res = ingest_scamp_full(conn, scamp_run["full"], catalogs=cats, merged_path=scamp_run["merged"])
    assert res.n_links == ours.sum() and res.n_objects == len(np.unique(np.asarray(full["SOURCE_NUMBER"])[ours]))
    assert res.n_reference_rows == (~ours).sum() and res.centroid == "xwin/ywin"
    # the brightest clean star of the first exposure: one object, three detections, one per exposure
    bright = conn.execute("SELECT id FROM detection WHERE exposure_id = %s AND flags = 0 "
                          "ORDER BY flux_auto DESC LIMIT 1", (ids[0],)).fetchone()[0]
    obj = conn.execute("SELECT o.id, o.kind, o.n_detections, o.n_epochs, o.ra, o.dec, o.mjd_last - o.mjd_first "
                       "FROM object o JOIN detection_object l ON l.object_id = o.id WHERE l.detection_id = %s",
                       (bright,)).fetchone()
    assert obj[1] == "static" and obj[2] == 3 and obj[3] == 3 and obj[6] > 0
    members = np.array(conn.execute("SELECT d.exposure_id, d.ra, d.dec FROM detection d JOIN detection_object l "
                                    "ON l.detection_id = d.id WHERE l.object_id = %s", (obj[0],)).fetchall())
    assert sorted(members[:, 0].astype(int).tolist()) == sorted(ids)
    sep = np.hypot((members[:, 1] - obj[4]) * np.cos(np.radians(obj[5])), members[:, 2] - obj[5]) * 3600
    assert sep.max() < 1.0
    # most bright stars of the field are seen on all three frames
    n3 = conn.execute("SELECT count(*) FROM object WHERE stage_run_id = %s AND n_epochs = 3",
                      (res.run_id,)).fetchone()[0]
    assert n3 > 200
    # no object links two detections of the same exposure
    assert conn.execute("SELECT count(*) FROM object WHERE stage_run_id = %s AND n_epochs <> n_detections",
                        (res.run_id,)).fetchone()[0] == 0
    # asteroid (5945), 9"/h, moves ~2.4" between frames (> SCAMP's 2" CROSSID_RADIUS): not one static object
    from tests.test_image_data import mover1_radec

    mover_objs = []
    for e in ids:
        mjd = conn.execute("SELECT mjd_mid FROM exposure WHERE id = %s", (e,)).fetchone()[0]
        ra, dec = mover1_radec(mjd + 2400000.5)
        hit = conn.execute("SELECT l.object_id FROM detection d JOIN detection_object l ON l.detection_id = d.id "
                           "WHERE d.exposure_id = %s AND q3c_radial_query(d.ra, d.dec, %s, %s, 3.0 / 3600)",
                           (e, float(ra), float(dec))).fetchall()
        mover_objs += [h[0] for h in hit]
    assert len(mover_objs) >= 2 and len(set(mover_objs)) == len(mover_objs)
    # the ASCII_HEAD full catalogue of the same run gives the same links; re-loading replaces
    links = conn.execute("SELECT l.detection_id, o.ra FROM detection_object l JOIN object o ON o.id = l.object_id "
                         "ORDER BY 1").fetchall()
    res2 = ingest_scamp_full(conn, scamp_run["full_ascii"], catalogs=cats)
    assert res2.n_links == res.n_links and res2.n_objects == res.n_objects and res2.replaced_objects == res.n_objects
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == res.n_objects
    pairs = conn.execute("SELECT array_agg(detection_id ORDER BY detection_id) FROM detection_object "
                         "GROUP BY object_id").fetchall()
    pairs_before = {}
    for det, ra in links:
        pairs_before.setdefault(ra, []).append(det)
    assert sorted(tuple(p[0]) for p in pairs) == sorted(tuple(sorted(v)) for v in pairs_before.values())
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0] == "replaced"


def test_scamp_full_in_wrong_catalogue_order_is_refused(conn, scamp_run):
    cats = scamp_run["cats"]
    ingest_catalogs(conn, cats)
    n_obj = conn.execute("SELECT count(*) FROM object").fetchone()[0]
    links = conn.execute("SELECT count(*) FROM detection_object").fetchone()[0]
    with pytest.raises(InputError, match=r"full_1\.cat.*match no detection of exposure.*SCAMP's order"):
        ingest_scamp_full(conn, scamp_run["full"], catalogs=cats[::-1])
    with pytest.raises(InputError, match="CATALOG_NUMBER 3 but 2 input catalogues"):
        ingest_scamp_full(conn, scamp_run["full"], catalogs=cats[:2])
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == n_obj
    assert conn.execute("SELECT count(*) FROM detection_object").fetchone()[0] == links


def test_cli_applies_heads_and_links(fresh_db_url, scamp_run, tmp_path):
    import click
    from click.testing import CliRunner

    from catdb.cli.ingest_scamp import scamp_command
    from catdb.cli.main import CatdbGroup
    from catdb.db.engine import connect

    @click.group(cls=CatdbGroup)
    def grp():
        pass

    grp.add_command(scamp_command)
    cats = [str(c) for c in scamp_run["cats"]]
    with connect(fresh_db_url) as c:
        ingest_catalogs(c, cats)
    obj = {"url": fresh_db_url, "quiet": True}
    r = CliRunner().invoke(grp, ["scamp", *cats, "--xml", str(scamp_run["xml"]), "--full", str(scamp_run["full"]),
                                 "--merged", str(scamp_run["merged"])], obj=obj)
    assert r.exit_code == 0, r.output
    assert r.output.count("detections re-positioned") == 3 and "objects" in r.output
    with connect(fresh_db_url) as c:
        n_obj, n3 = c.execute("SELECT count(*), count(*) FILTER (WHERE n_epochs = 3) FROM object").fetchone()
        runs = c.execute("SELECT count(*) FROM stage_run WHERE stage = 'ingest-scamp' AND status = 'ok'").fetchone()[0]
    assert n_obj > 0 and n3 > 200 and runs == 4
    stray = tmp_path / "nosuchframe.head"
    shutil.copy(LCO / "example_scamp.head", stray)
    r = CliRunner().invoke(grp, ["scamp", str(stray)], obj=obj)
    assert r.exit_code == 1 and "nosuchframe.head" in r.output and "matches no exposure" in r.output
    r = CliRunner().invoke(grp, ["scamp", str(stray), "--full", str(scamp_run["full"])], obj=obj)
    assert r.exit_code == 1 and "--full needs the SExtractor catalogues" in r.output
