"""SCAMP .head and XML report reading on real SCAMP outputs."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs.utils import proj_plane_pixel_scales

from catdb.errors import InputError
from catdb.ingest.headers import read_text_header
from catdb.ingest.scamp import apply_scamp_head, read_scamp_head, read_scamp_heads, read_scamp_xml
from catdb.wcsutil import wcs_from_header
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"


def test_scamp_heads_parse_to_working_wcs():
    for name, ctype in [("example_scamp.head", "RA---TAN"), ("example_externcat_scamp.head", "RA---TAN"),
                        ("example_externcat_scamp_tpv.head", "RA---TPV")]:
        heads = read_scamp_heads(LCO / name)
        assert len(heads) == 1
        h = heads[0]
        assert h["CTYPE1"] == ctype and h["FGROUPNO"] == 1 and "HISTORY" in h
        w = wcs_from_header(h)
        ra, dec = w.all_pix2world([h["CRPIX1"]], [h["CRPIX2"]], 1)
        # TPV PV1_0/PV2_0 shift the reference point by up to 0.5": within 1"
        assert ra[0] == pytest.approx(h["CRVAL1"], abs=3e-4) and dec[0] == pytest.approx(h["CRVAL2"], abs=3e-4)
    tpv = read_scamp_head(LCO / "example_externcat_scamp_tpv.head")
    assert sum(k.startswith("PV") for k in tpv) == 20
    # the TPV distortion is applied: at the image corner (1, 1) it moves the position by > 1"
    w = wcs_from_header(tpv)
    linh = tpv.copy()
    for k in [k for k in linh if k.startswith("PV")]:
        del linh[k]
    linh["CTYPE1"], linh["CTYPE2"] = "RA---TAN", "DEC--TAN"
    lin = wcs_from_header(linh)
    a = SkyCoord(*w.all_pix2world(1, 1, 1), unit="deg")
    b = SkyCoord(*lin.all_pix2world(1, 1, 1), unit="deg")
    assert a.separation(b).arcsec > 1.0


def test_scamp_head_matches_its_xml_report():
    head = read_scamp_head(LCO / "example_scamp.head")
    rep = read_scamp_xml(LCO / "example_scamp.xml")
    assert rep.meta["Version"] == "2.0.4" and rep.meta["AstRef_Catalog"] == "UCAC-4"
    f = rep.fields
    assert len(f) == 1 and f["NDetect"][0] == 606
    assert f["AS_Contrast"][0] > 3  # a secure pattern match
    # same solution: field centre, pixel scale and reference dispersion agree
    ra, dec = f["Field_Coordinates"][0]
    assert ra == pytest.approx(head["CRVAL1"], abs=0.02) and dec == pytest.approx(head["CRVAL2"], abs=0.02)
    scale = np.mean(proj_plane_pixel_scales(wcs_from_header(head))) * 3600
    assert scale == pytest.approx(f["Pixel_Scale"][0][0], rel=1e-3)
    sig = f["AstromSigma_Reference"][0]
    assert str(f["AstromSigma_Reference"].unit) == "arcsec"
    assert sig[0] == pytest.approx(head["ASTRRMS1"] * 3600, rel=1e-3)
    assert sig[1] == pytest.approx(head["ASTRRMS2"] * 3600, rel=1e-3)
    g = rep.fgroups
    assert g["AstRef_Catalog"][0] == "UCAC-4" and g["AstromNDets_Reference"][0] == 64


def test_apply_scamp_head_replaces_whole_wcs():
    img = read_text_header(LCO / "example_pp_hdr")  # has quoted TPV PV cards of its own
    head = read_scamp_head(LCO / "example_externcat_scamp.head")  # TAN, no PV
    new = apply_scamp_head(img, head)
    assert not any(k.startswith("PV") for k in new)
    assert new["CRVAL1"] == head["CRVAL1"] and new["OBJECT"] == img["OBJECT"]
    assert img["CRVAL1"] == "342.120254759"  # input untouched


def test_multi_block_head_and_errors(tmp_path):
    text = (LCO / "example_scamp.head").read_text()
    two = tmp_path / "mef.head"
    two.write_text(text + text.replace("1.783286919001E+02", "1.790000000000E+02").rstrip("\n").rsplit("\n", 1)[0])
    heads = read_scamp_heads(two)  # second block without END
    assert len(heads) == 2 and heads[1]["CRVAL1"] == 179.0
    assert read_scamp_head(two, 1)["CRVAL1"] == 179.0
    with pytest.raises(InputError, match="extension 2"):
        read_scamp_head(two, 2)
    bad = tmp_path / "bad.head"
    bad.write_text("FGROUPNO=                    1 / SCAMP field group label\nEND\n")
    with pytest.raises(InputError, match="CTYPE1"):
        read_scamp_head(bad)
    with pytest.raises(InputError) as e:
        read_scamp_xml(LCO / "example_scamp.head")
    assert "example_scamp.head" in str(e.value)
