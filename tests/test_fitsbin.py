"""The direct FITS binary table reader (catdb.ingest.fitsbin) against astropy, on real catalogues."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from catdb.errors import InputError
from catdb.ingest import sextractor
from catdb.ingest.fitsbin import read_bintable, scan_hdus
from tests.helpers import LCO, REPO_DATA

SEX_SHARE = "/usr/share/source-extractor"
REAL = [LCO / "ldac_test_catalog.fits", LCO / "GAIA-DR2.cat", LCO / "oracdr_test_catalog.fits",
        LCO / "CatalogFiles" / "cpt1m010-kb70-20160210-0365-e90_cat.fits",
        LCO / "CatalogFiles" / "elp1m008-fl05-20160217-0218-e90_cat.fits"]


def _astropy_catalogs(path, monkeypatch):
    """read_catalogs with the fast path switched off (astropy reads the file)."""
    with monkeypatch.context() as m:
        m.setattr(sextractor, "_read_plain_fits", lambda p: None)
        return sextractor.read_catalogs(path)


def _same(fast, slow):
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert (a.format, a.hdu, a.path) == (b.format, b.hdu, b.path)
        assert a.table.colnames == b.table.colnames
        for c in a.table.colnames:
            x, y = np.asarray(a.table[c]), np.asarray(b.table[c])
            assert x.shape == y.shape and x.dtype.kind == y.dtype.kind, c
            np.testing.assert_array_equal(x, y, err_msg=c)
        assert a.units == b.units and a.descriptions == b.descriptions
        assert list(a.header.keys()) == list(b.header.keys())
        assert [str(c) for c in a.header.cards] == [str(c) for c in b.header.cards]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_fast_reader_reads_real_catalogues_as_astropy(path, monkeypatch):
    assert sextractor._read_plain_fits(path) is not None  # these files are plain: the fast path is taken
    _same(sextractor.read_catalogs(path), _astropy_catalogs(path, monkeypatch))


def test_fast_reader_on_a_source_extractor_ldac_and_fits10(tmp_path, monkeypatch):
    """Vector columns (FLUX_APER(3) -> 3E with TDIM), TUNIT/TTYPE comments as written by source-extractor."""
    if shutil.which("source-extractor") is None:
        pytest.skip("source-extractor binary not installed")
    hdu = fits.open(REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz")[1]
    img = tmp_path / "cut.fits"
    fits.PrimaryHDU(hdu.data[700:1000, 700:1000].astype(np.float32)).writeto(img)
    (tmp_path / "p.param").write_text("NUMBER\nX_IMAGE\nY_IMAGE\nFLUX_AUTO\nFLUX_APER(3)\nMAG_APER(3)\nFLAGS\n"
                                      "ISOAREA_IMAGE\nFLUX_RADIUS(2)\n")
    for ctype in ("FITS_LDAC", "FITS_1.0"):
        out = tmp_path / f"cut_{ctype}.cat"
        subprocess.run(["source-extractor", str(img), "-c", f"{SEX_SHARE}/default.sex", "-PARAMETERS_NAME",
                        str(tmp_path / "p.param"), "-FILTER_NAME", f"{SEX_SHARE}/default.conv",
                        "-CATALOG_TYPE", ctype, "-CATALOG_NAME", str(out), "-PHOT_APERTURES", "4,8,12",
                        "-PHOT_FLUXFRAC", "0.5,0.9", "-VERBOSE_TYPE", "QUIET", "-CHECKIMAGE_TYPE", "NONE"],
                       check=True, cwd=tmp_path, timeout=60)
        fast = sextractor.read_catalogs(out)
        assert sextractor._read_plain_fits(out) is not None
        assert fast[0].table["FLUX_APER"].shape == (len(fast[0]), 3)
        assert fast[0].units["FLUX_AUTO"] == "count"
        _same(fast, _astropy_catalogs(out, monkeypatch))


def test_unusual_layouts_are_left_to_astropy(tmp_path):
    """Scaled, TNULL, multi-axis TDIM and character columns: the fast path declines, astropy reads them."""
    n = 5
    cols = [fits.Column("NUMBER", "J", array=np.arange(1, n + 1)),
            fits.Column("X_IMAGE", "E", array=np.ones(n)), fits.Column("Y_IMAGE", "E", array=np.ones(n))]
    extra = {"scaled": fits.Column("S", "J", array=np.arange(n, dtype=np.uint32), bzero=2**31),
             "tnull": fits.Column("T", "J", array=np.arange(n), null=-1),
             "tdim": fits.Column("V", "4E", dim="(2,2)", array=np.ones((n, 2, 2))),
             "char": fits.Column("C", "3A", array=np.array(["a", "bb", "ccc", "d", "e"]))}
    for name, col in extra.items():
        p = tmp_path / f"{name}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols + [col])]).writeto(p)
        assert sextractor._read_plain_fits(p) is None, name
        assert len(sextractor.read_catalogs(p)[0]) == n


def test_truncated_or_broken_files_go_to_astropy_and_fail_as_before(tmp_path):
    raw = (LCO / "ldac_test_catalog.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(raw[: len(raw) - 2880 * 20])
    assert scan_hdus(bytearray(cut.read_bytes())) is None
    with pytest.raises(InputError, match="truncated"):
        sextractor.read_catalogs(cut)
    with pytest.raises(InputError, match="END"):
        sextractor.read_catalogs(LCO / "ldac_test_catalog_corrupt.fits")


def test_columns_are_views_of_the_records():
    buf = bytearray((LCO / "ldac_test_catalog.fits").read_bytes())
    hdus = scan_hdus(buf)
    assert [h.name for h in hdus] == ["", "LDAC_IMHEAD", "LDAC_OBJECTS"]
    bt = read_bintable(buf, hdus[2])
    assert len(bt.data) == 974 and bt.data["NUMBER"][0] == 1 and bt.data.dtype["ALPHA_J2000"] == np.dtype(">f8")
    assert bt.descriptions["NUMBER"] == "Running object number" and bt.units["ALPHA_J2000"] == "deg"
