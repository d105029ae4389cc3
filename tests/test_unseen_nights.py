"""Dry runs of nights from telescopes catdb was not developed on, with their real header conventions.

Each test builds a small night whose headers are a real observatory's (tests/data/lco: LCO BANZAI,
Swope, KPNO MOSAIC, a Photometry Pipeline header), changing only the per-exposure time and
pointing cards, and runs it through catdb as a user would.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from catdb.ingest.headers import load_keymap, read_text_header
from catdb.ingest.load import ingest_catalogs, ingest_images
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning")


def _ldac(path, header, n=20, seed=0):
    """A FITS_LDAC catalogue of ``n`` sources inside ``header``'s WCS (bench/survey.py's writer)."""
    from astropy.wcs import WCS

    from bench import survey
    from catdb.wcsutil import clean_wcs_header

    rng = np.random.default_rng(seed)
    w = WCS(clean_wcs_header(header))
    x, y = rng.uniform(10, 1000, (2, n))
    ra, dec = w.all_pix2world(x, y, 1)
    cols = {"NUMBER": np.arange(1, n + 1, dtype=np.int32), "X_IMAGE": x, "Y_IMAGE": y,
            "ALPHA_J2000": ra, "DELTA_J2000": dec,
            "ERRAWIN_WORLD": np.full(n, 0.1 / 3600, np.float32), "ERRBWIN_WORLD": np.full(n, 0.1 / 3600, np.float32),
            "FLUX_AUTO": np.full(n, 1000.0, np.float32), "FLUXERR_AUTO": np.full(n, 20.0, np.float32),
            "MAG_AUTO": np.full(n, -7.5, np.float32), "MAGERR_AUTO": np.full(n, 0.02, np.float32),
            "FLAGS": np.zeros(n, np.int16)}
    survey._write_ldac(path, header, cols)
    return path


def test_shipped_keymap_name_is_not_read_from_a_directory_of_that_name(conn, tmp_path, monkeypatch):
    """A Swope night kept in ./swope/ (the working directory holds a directory named like the keymap):
    the header is detected as ``swope`` and the shipped map is used, not the directory (was: every file
    FAILED with 'swope: cannot read keymap: Is a directory')."""
    night = tmp_path / "swope"
    night.mkdir()
    hdr = read_text_header(LCO / "swope_test_header")
    hdr["NAXIS1"], hdr["NAXIS2"] = 2048, 2056
    path = _ldac(night / "ccd1100c1.ldac", hdr)
    monkeypatch.chdir(tmp_path)
    assert load_keymap("swope")["name"] == "swope"
    (res,) = ingest_catalogs(conn, [path])
    assert res.status == "loaded"
    row = conn.execute("SELECT observatory_code, band, exptime, gain FROM exposure WHERE id = %s",
                       (res.exposure_ids[0],)).fetchone()
    assert row == ("304", "r", 10.0, 1.04)


def test_lco_banzai_processed_frame_is_one_exposure(conn, tmp_path):
    """An LCO BANZAI product (``*-e91.fits.fz``): an empty primary, the science image ``SCI`` with the full
    header, the source table ``CAT``, then the bad-pixel mask ``BPM`` and the error image ``ERR`` with
    only ``EXTNAME`` in their headers (banzai.utils.fits_utils.to_fits_image_extension).  One exposure,
    the SCI one (was: the whole file FAILED, the BPM having no observation time)."""
    hdr = read_text_header(LCO / "example_lco_proc_hdr")
    for k in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"):
        del hdr[k]
    shape = (2038, 2028)
    path = tmp_path / "cpt1m013-kb76-20160606-0396-e91.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros(shape, np.float32), header=hdr, name="SCI"),
                  fits.BinTableHDU.from_columns([fits.Column(name="ra", format="D", array=np.zeros(2))], name="CAT"),
                  fits.CompImageHDU(np.zeros(shape, np.uint8), header=fits.Header({"EXTNAME": "BPM"})),
                  fits.CompImageHDU(np.ones(shape, np.float32), header=fits.Header({"EXTNAME": "ERR"}))]
                 ).writeto(path)
    (res,) = ingest_images(conn, [path])
    assert res.status == "loaded" and res.n_rows == 1
    row = conn.execute("SELECT hdu, image_type, exptime, band, observatory_code, naxis1, naxis2, wcs_status "
                       "FROM exposure WHERE id = %s", (res.exposure_ids[0],)).fetchone()
    assert row == (1, "science", 100.0, "w", "K92", 2028, 2038, "header")


def test_swope_sidereal_time_in_seconds_never_flips_the_site():
    """Swope's ``ST = 82783.5 / sidereal time: 22:59:43 (start)`` is in SECONDS.  Read as hours it gave a
    random 'LST - GMST' (15 deg per second of ST) that matched the opposite longitude on about 1 exposure
    in 300 and flipped Las Campanas to +70.698 there: a 10 s cadence over 3 hours keeps -70.698 on every
    exposure, and the sign check agrees."""
    from astropy.time import Time

    from catdb.ingest.headers import exposure_metadata, gmst_deg

    hdr = read_text_header(LCO / "swope_test_header")
    assert exposure_metadata(hdr, "swope", return_sources=True)[1]["site_lon"].endswith("(sign agrees with ST - "
                                                                                          "GMST = -70.721 deg)")
    lons = []
    for mjd0 in 59847.0 + np.arange(0, 3 * 3600, 10.0) / 86400:
        h = hdr.copy()
        h["DATE-OBS"] = Time(mjd0, format="mjd").isot[:19]
        h["ST"] = round((gmst_deg(mjd0) - 70.698) % 360 / 15 * 3600, 1)
        lons.append(exposure_metadata(h, "swope")["site_lon"])
    assert set(lons) == {-70.698}


def test_ccd_temperature_of_kpno_and_swope():
    """KPNO writes the CCD temperature as CCDTEM, Swope as TEMPCCD (deg C)."""
    from catdb.ingest.headers import detect_instrument, exposure_metadata

    for name, want in (("example_kpno_mef_prihdr", -97.8), ("swope_test_header", -110.0)):
        h = read_text_header(LCO / name)
        row = exposure_metadata(h, load_keymap(detect_instrument(h)), path=name, hdu=0, sha256="x")
        assert row["ccd_temp"] == pytest.approx(want, abs=1e-3), name


def test_bad_extension_of_a_mef_is_named(conn, tmp_path):
    """A multi-extension file whose second image has no exposure time: the error names file[extension]."""
    from catdb.errors import InputError

    h = read_text_header(LCO / "example_kpno_mef_extnhdr")
    for k in ("XTENSION", "PCOUNT", "GCOUNT", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE"):
        h.remove(k, ignore_missing=True, remove_all=True)
    bad = h.copy()
    for k in ("EXPTIME", "EXPOSURE", "DARKTIME", "ITIME"):
        bad.remove(k, ignore_missing=True, remove_all=True)
    prim = read_text_header(LCO / "example_kpno_mef_prihdr")
    for k in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "NEXTEND", "EXPTIME", "EXPOSURE", "DARKTIME"):
        prim.remove(k, ignore_missing=True, remove_all=True)
    data = np.zeros((16, 16), np.float32)
    path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(header=prim), fits.ImageHDU(data, header=h), fits.ImageHDU(data, header=bad)]
                 ).writeto(path, output_verify="silentfix")
    with pytest.raises(InputError, match=r"mef\.fits\[2\]"):
        ingest_images(conn, [path], instrument="generic")


def test_lco_raw_amplifiers_do_not_share_the_primary_wcs(conn, tmp_path):
    """The real raw LCO Sinistro frame: 4 amplifier extensions (``SCI`` 1-4, own ``GAIN``, ``DETSEC``, no WCS)
    behind a primary whose WCS is that of the whole trimmed 1024x1024 frame.  Four exposures with each
    amplifier's gain; none takes the primary's WCS (was: all four got the same footprint, the first
    quadrant's, and extract stored RA/Dec up to ~13' wrong for three of them): extract refuses with the
    solve command."""
    from catdb.errors import StageError
    from catdb.stages import run_stage

    path = LCO / "mef_raw_test_frame.fits"
    (res,) = ingest_images(conn, [path])
    assert res.n_rows == 4
    rows = conn.execute("SELECT hdu, gain, readnoise, exptime, band, observatory_code, pixscale, wcs_status, "
                        "wcs_source, ra_center FROM exposure WHERE id = ANY(%s) ORDER BY hdu",
                        (res.exposure_ids,)).fetchall()
    assert [r[:7] for r in rows] == [(h, g, 7.0, 94.975, "w", "V37", 0.778)
                                     for h, g in zip((1, 2, 3, 4), (6.42, 6.23, 6.27, 6.26))]
    assert {(r[7], r[9]) for r in rows} == {("none", None)}
    assert "primary header's WCS is not used" in rows[0][8]
    with pytest.raises(StageError, match=r"without a usable WCS.*catdb stage solve"):
        run_stage("extract", conn=conn, where=f"e.id = ANY(ARRAY{res.exposure_ids})",
                  params={"outdir": str(tmp_path), "use_raw": True})
    assert conn.execute("SELECT count(*) FROM detection WHERE exposure_id = ANY(%s)",
                        (res.exposure_ids,)).fetchone()[0] == 0


def test_kpno_tnx_wcs_says_its_distortion_is_dropped(conn, tmp_path):
    """A KPNO MOSAIC chip's WCS is IRAF TNX (a polynomial in the WAT cards); astropy and SExtractor read it as
    plain TAN, the distortion (up to ~8 arcsec over this chip) dropped.  The exposure keeps the header's WCS
    (status ``header``) and ``wcs_source`` says so (was: a bare 'FITS header')."""
    h = read_text_header(LCO / "example_kpno_mef_extnhdr")
    for k in ("XTENSION", "PCOUNT", "GCOUNT", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE"):
        h.remove(k, ignore_missing=True, remove_all=True)
    prim = read_text_header(LCO / "example_kpno_mef_prihdr")
    for k in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "NEXTEND"):
        prim.remove(k, ignore_missing=True, remove_all=True)
    data = np.zeros((64, 64), np.float32)
    path = tmp_path / "kpno_tnx.fits"
    fits.HDUList([fits.PrimaryHDU(header=prim), fits.ImageHDU(data, header=h), fits.ImageHDU(data, header=h)]
                 ).writeto(path, output_verify="silentfix")
    (res,) = ingest_images(conn, [path])
    rows = conn.execute("SELECT wcs_status, wcs_source FROM exposure WHERE id = ANY(%s)",
                        (res.exposure_ids,)).fetchall()
    assert len(rows) == 2
    for status, source in rows:
        assert status == "header"
        assert source.startswith("FITS header; IRAF TNX read as TAN: its WAT distortion polynomial is dropped")


def test_extension_extracted_with_the_primarys_saturation_and_gain(tmp_path):
    """A raw MEF keeps SATURATE (and often GAIN) in the primary header only (the real LCO Sinistro frame:
    SATURATE = 40000 there, none in its amplifier extensions).  SExtractor runs on the extension with the
    primary's cards merged, as ``ingest image`` reads it: a star above the primary's SATURATE is flagged
    saturated (was: catdb.sex's 50000 ADU, and GAIN 0 when only the primary had it)."""
    from catdb.ingest.extract import extract
    from catdb.ingest.sextractor import read_catalog

    yy, xx = np.mgrid[1:65, 1:65]
    data = np.random.default_rng(0).normal(100.0, 3.0, (64, 64)).astype(np.float32)
    data += (3000.0 * np.exp(-((xx - 32.3) ** 2 + (yy - 30.6) ** 2) / (2 * 1.5**2))).astype(np.float32)
    prim = fits.Header({"SATURATE": 1000.0, "GAIN": 2.0, "EXPTIME": 10.0})
    ext = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
                       "CRPIX1": 32.0, "CRPIX2": 32.0, "CD1_1": -1e-4, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 1e-4})
    path = tmp_path / "amp.fits"
    fits.HDUList([fits.PrimaryHDU(header=prim), fits.ImageHDU(data, header=ext, name="SCI")]).writeto(path)
    info = {}
    cat = read_catalog(extract(path, tmp_path / "amp.cat", hdu=1, config={"DETECT_THRESH": 5}, info=info)).table
    assert info["header"]["GAIN"] == 2.0 and info["header"]["CRVAL1"] == 150.0
    assert len(cat) == 1 and cat["FLAGS"][0] & 4


def _sky_frame(rng, sources, shape=(256, 256), sky=200.0, sigma=1.5):
    """Poisson sky plus Gaussian sources ``(x, y, flux)`` (1-based pixels, flux in ADU, gain 1)."""
    yy, xx = np.mgrid[1:shape[0] + 1, 1:shape[1] + 1]
    x, y, f = (sources[:, i, None, None] for i in range(3))
    img = sky + (f / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))).sum(0)
    return rng.poisson(img).astype(np.float32)


def _lco_times(h, mjd):
    from astropy.time import Time

    h["DATE-OBS"], h["MJD-OBS"] = Time(mjd, format="mjd").isot[:23], round(mjd, 7)
    h["UTSTART"], h["UTSTOP"] = (Time(m, format="mjd").isot[11:23] for m in (mjd, mjd + h["EXPTIME"] / 86400))


def _swope_times(h, mjd):
    from astropy.time import Time

    from catdb.ingest.headers import gmst_deg

    h["DATE-OBS"] = Time(mjd, format="mjd").isot[:19]
    h["UT-DATE"], h["UT-TIME"] = h["DATE-OBS"][:10], h["DATE-OBS"][11:]
    h["UT-END"] = Time(mjd + h["EXPTIME"] / 86400, format="mjd").isot[11:19]
    h["ST"] = round((gmst_deg(mjd) - 70.698) % 360 / 15 * 3600, 1)


def _write_banzai(path, data, hdr):
    """An LCO BANZAI ``e91`` product: SCI (a hot column in it), CAT, BPM marking the column, ERR."""
    data[:, 199] = 60000.0
    bpm = np.zeros(data.shape, np.uint8)
    bpm[:, 199] = 1
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=hdr, name="SCI"),
                  fits.BinTableHDU.from_columns([fits.Column(name="ra", format="D", array=np.zeros(2))], name="CAT"),
                  fits.CompImageHDU(bpm, header=fits.Header({"EXTNAME": "BPM"})),
                  fits.CompImageHDU(np.sqrt(data + 13.5**2), header=fits.Header({"EXTNAME": "ERR"}))]).writeto(path)


@pytest.mark.parametrize("name, template, times, banzai, want", [
    ("lco-banzai", "example_lco_proc_hdr", _lco_times, True, ("w", "K92", 20.81, 100.0, 80.2, -1, -1)),
    ("swope", "swope_test_header", _swope_times, False, ("r", "304", -70.698, 10.0, 74.3, -1, 1)),
    ("photometry-pipeline", "example_pp_hdr", _lco_times, False, ("w", "W85", -70.805, 124.973, 66.6, 1, -1)),
])
def test_image_night_finds_the_asteroid(fresh_db_url, tmp_path, name, template, times, banzai, want):
    """Ten 256x256 frames 3 min apart with a real observatory's header (WCS moved to the small frame; time
    cards set per frame): 40 fixed stars and an asteroid moving (8, 3) pixels a frame.  ``ingest image`` ->
    ``extract`` (raw) -> ``associate`` -> ``movers``: one exposure a file, the header's band, site and
    exposure time, and one candidate track of all 10 frames at the asteroid's rate and direction (the header
    WCS's pixel scale and orientation)."""
    from astropy.time import Time

    from catdb.db.engine import connect
    from catdb.stages import run_stage

    band, code, lon, exptime, rate, sign_ra, sign_dec = want
    rng = np.random.default_rng(1)
    stars = np.column_stack([rng.uniform(15, 242, (2, 40)).T, rng.uniform(3000, 60000, 40)])
    hdr = read_text_header(LCO / template)
    for k in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE"):
        hdr.remove(k, ignore_missing=True)
    hdr["CRPIX1"] = hdr["CRPIX2"] = 128.5
    mjd0 = Time(hdr["DATE-OBS"]).mjd
    paths = []
    for k in range(10):
        h = hdr.copy()
        times(h, mjd0 + k * 180 / 86400)
        data = _sky_frame(rng, np.vstack([stars, [40 + 8 * k, 60 + 3 * k, 8000.0]]))
        paths.append(tmp_path / f"{name}-{k:02d}.fits{'.fz' if banzai else ''}")
        if banzai:
            _write_banzai(paths[-1], data, h)
        else:
            fits.PrimaryHDU(data, header=h).writeto(paths[-1], output_verify="silentfix")
    conn = connect(fresh_db_url)
    try:
        res = ingest_images(conn, paths)
        assert [r.n_rows for r in res] == [1] * 10
        rows = conn.execute("SELECT hdu, band, observatory_code, round(site_lon::numeric, 3)::float8, exptime, "
                            "wcs_status FROM exposure").fetchall()
        assert set(rows) == {(1 if banzai else 0, band, code, lon, exptime, "header")}
        run_stage("extract", conn=conn, params={"outdir": str(tmp_path / "out"), "use_raw": True})
        run_stage("associate", conn=conn)
        run_stage("movers", conn=conn)
        tracks = conn.execute("SELECT n_detections, rate, rate_ra, rate_dec FROM track WHERE status = 'candidate'"
                              ).fetchall()
        assert len(tracks) == 1
        n, r, r_ra, r_dec = tracks[0]
        assert n == 10 and r == pytest.approx(rate, abs=1.0)
        assert np.sign(r_ra) == sign_ra and np.sign(r_dec) == sign_dec
    finally:
        conn.close()


def test_lco_raw_amplifier_is_trimmed_to_its_datasec():
    """The real raw LCO Sinistro amplifier declares ``BIASSEC = '[520:540,1:512]'`` and ``DATASEC =
    '[1:512,1:512]'`` but no ``TRIMSEC``: reduce's overscan step trims it to the data section (was: 'missing
    TRIMSEC', so ``catdb stage reduce`` could not process an LCO raw frame)."""
    from catdb.algorithms.reduce import prepare_frame, read_raw

    path = LCO / "mef_raw_test_frame.fits"
    raw = read_raw(path, hdu=2)
    out = prepare_frame(raw, path=path)
    assert out.shape == (512, 512) and out.meta["TRIM"] == "Trim data section is [1:512,1:512] (DATASEC)"
    level = np.median(raw.data[:512, 519:540])
    assert out.meta["OSCNMED"] == pytest.approx(level, abs=2)
    assert np.median(out.data) == pytest.approx(np.median(raw.data[:512, :512]) - level, abs=5)
