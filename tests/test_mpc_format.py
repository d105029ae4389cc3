"""MPC 80-column records (real MPC/neoexchange files) and ADES PSV."""
import numpy as np
import pytest

from catdb.errors import InputError
from catdb.export.mpc import (format_ades_psv, format_mpc80, pack_number, pack_provisional,
                              parse_ades_psv, parse_mpc80, table_to_mpc80, unpack_number,
                              unpack_provisional)
from tests.helpers import TEST_DATA

MPC_FILES = sorted((TEST_DATA / "mpc").glob("*.dat"))


def test_there_is_real_data():
    assert len(MPC_FILES) == 4


@pytest.mark.parametrize("path", MPC_FILES, ids=lambda p: p.name)
def test_real_records_round_trip_byte_identical(path):
    original = [ln for ln in path.read_text().splitlines() if ln.strip()]
    t = parse_mpc80(path)
    out = table_to_mpc80(t)
    assert all(len(ln) == 80 for ln in out)
    assert out == original


def test_parsed_values_are_what_the_columns_say():
    t = parse_mpc80(TEST_DATA / "mpc" / "test_mpcobs_13553.dat")
    first = t[0]
    assert first["designation"] == "13553" and first["provid"] == "J92J00E"
    assert unpack_provisional(first["provid"]) == "1992 JE"
    assert first["note1"] == "3" and first["note2"] == "A" and first["obscode"] == "675"
    # 1992 06 03.22714 = MJD 48776.22714
    assert first["mjd"] == pytest.approx(48776.22714, abs=1e-9)
    assert first["ra"] == pytest.approx((14 + 26 / 60 + 2.07 / 3600) * 15, abs=1e-9)
    assert first["dec"] == pytest.approx(-(57 / 60 + 45.2 / 3600), abs=1e-9)  # the "-00" case
    assert first["mag"] == pytest.approx(17.3)
    sat = t[t["note2"] == "S"][0]
    assert sat["sat_units"] == 1 and sat["sat_x"] == pytest.approx(6752.8346)
    assert sat["sat_z"] == pytest.approx(308.3567)
    t2 = parse_mpc80(TEST_DATA / "mpc" / "test_mpcobs_215426.dat")
    assert "215426" in set(t2["designation"])
    assert unpack_provisional("K02J45F") == "2002 JF45"
    # six-decimal times of K93 are kept
    t3 = parse_mpc80(TEST_DATA / "mpc" / "test_multiframe.dat")
    assert set(t3["time_decimals"]) == {5, 6}


def test_packing():
    assert pack_number(13553) == "13553"
    assert pack_number(215426) == "L5426"
    assert pack_number(620000) == "~0000" and unpack_number("~0000") == 620000
    assert pack_number(3140113) == "~AZaz" and unpack_number("~AZaz") == 3140113
    assert unpack_number("boops") is None
    assert pack_provisional("2002 JF45") == "K02J45F"
    assert pack_provisional("1995 XA") == "J95X00A"
    assert pack_provisional("2007 TA418") == "K07Tf8A"
    with pytest.raises(InputError):
        pack_provisional("hello")


def test_format_rounding_carries():
    # 23h59m59.999s rounds to 00 00 00.00; 59.96" in Dec rounds to the next arcminute
    ra = (23 + 59 / 60 + 59.999 / 3600) * 15
    dec = -(10 + 59 / 60 + 59.96 / 3600)
    (line,) = format_mpc80(58568.999999999, ra, dec, provid="2019 FA", mag=18.25, band="R",
                           obscode="688", mag_decimals=1)
    assert len(line) == 80
    assert line[15:32] == "2019 03 27.00000 "
    assert line[32:44] == "00 00 00.00 " and line[44:56] == "-11 00 00.0 "
    assert line[5:12] == "K19F00A" and line[77:80] == "688" and line[70] == "R"
    with pytest.raises(InputError, match="observatory"):
        format_mpc80(58568.5, 10.0, 10.0, provid="X", obscode="68")


def test_ades_psv():
    mjd = np.array([58568.10418, 58568.34034])
    doc = format_ades_psv(mjd, [124.62662, 124.63359], [25.34294, 25.32967], stn="688",
                          trk_sub="cdb0001", rms_ra=[0.3, 0.3], rms_dec=[0.3, 0.3],
                          mag=[17.1, np.nan], band="R", ast_cat="Gaia2",
                          submitter="A. Astronomer", measurers=["A. Astronomer", "B. Student"],
                          telescope={"aperture": 1.1, "design": "reflector", "detector": "CCD"})
    lines = doc.splitlines()
    assert lines[0] == "# version=2022"
    header, t = parse_ades_psv(doc)
    assert header["observatory"]["mpcCode"] == "688"
    assert header["measurers"]["name"] == ["A. Astronomer", "B. Student"]
    assert header["telescope"]["aperture"] == "1.1"
    assert list(t.colnames[:8]) == ["permID", "provID", "trkSub", "mode", "stn", "obsTime", "ra", "dec"]
    assert t["obsTime"][0] == "2019-03-26T02:30:01.152Z"
    assert float(t["ra"][1]) == pytest.approx(124.63359, abs=1e-7)
    assert float(t["dec"][0]) == pytest.approx(25.34294, abs=1e-7)
    assert t["mag"][1] == "" and t["astCat"][0] == "Gaia2"
    bars = {ln.count("|") for ln in lines if not ln.startswith(("#", "!"))}
    assert len(bars) == 1
    with pytest.raises(InputError, match="trkSub"):
        format_ades_psv(mjd, [1, 2], [1, 2], stn="688")


def _ades_doc(**kw):
    mjd = np.array([58568.10418, 58568.34034])
    args = dict(stn="688", trk_sub="cdb0001", rms_ra=[0.3, 0.3], rms_dec=[0.3, 0.3], mag=[17.1, np.nan], band="R",
                ast_cat="Gaia2", submitter="A. Astronomer", measurers=["A. Astronomer", "B. Student"],
                telescope={"aperture": 1.1, "design": "reflector", "detector": "CCD"})
    args.update(kw)
    return format_ades_psv(mjd, [124.62662, 124.63359], [25.34294, 25.32967], **args)


@pytest.mark.parametrize("use_schema", [True, False], ids=["xsd", "field-rules"])
def test_ades_2022_xml_validates_and_errors_are_found(use_schema):
    """The PSV as ADES 2022 XML: valid against the ADES master's submit.xsd (with a full context) or
    general.xsd (without), and against the documented field rules; broken documents are not."""
    from catdb.export.ades import psv_to_xml, schema_file, validate_ades_xml

    if use_schema:
        pytest.importorskip("lxml", reason="lxml (the export extra) is not installed")
        if schema_file("submit") is None:
            pytest.skip("the iau-ades package (ADES XML schemas; the export extra) is not installed")
    xml = psv_to_xml(_ades_doc())
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ades version="2022">')
    assert b"<obsContext><observatory><mpcCode>688</mpcCode></observatory>" in xml
    # the second record has no magnitude: no band either (ADES: band belongs to a mag)
    assert xml.count(b"<band>R</band>") == 1 and xml.count(b"<astCat>Gaia2</astCat>") == 2
    how, errors = validate_ades_xml(xml, use_schema=use_schema)
    assert errors == [] and how == ("submit.xsd" if use_schema else "field rules")
    # no telescope: not a submission, bare optical records, valid ADES (general.xsd)
    gen = psv_to_xml(_ades_doc(telescope=None))
    assert b"<obsBlock>" not in gen
    how, errors = validate_ades_xml(gen, use_schema=use_schema)
    assert errors == [] and how == ("general.xsd" if use_schema else "field rules")
    # what the MPC refuses is refused: no astCat, a trkSub with a blank, Dec beyond the pole, version 2017
    for bad, word in ((xml.replace(b"<astCat>Gaia2</astCat>", b""), "astCat"),
                      (xml.replace(b"cdb0001", b"cdb 0001"), "trkSub"),
                      (xml.replace(b"+25.3429400", b"+95.3429400"), "dec"),
                      (xml.replace(b'version="2022"', b'version="2017"'), "version")):
        how, errors = validate_ades_xml(bad, use_schema=use_schema)
        assert errors and any(word in e for e in errors), (word, errors)


def test_ast_cat_codes():
    from catdb.export.ades import ast_cat_code

    assert [ast_cat_code(x) for x in ("gaia-dr2", "GAIA_DR3", "Gaia EDR3", "ucac4", "TYCHO2", "Gaia2")] == \
        ["Gaia2", "Gaia3", "Gaia3E", "UCAC4", "Tyc2", "Gaia2"]
    assert ast_cat_code("my-own-stars") is None and ast_cat_code(None) is None
