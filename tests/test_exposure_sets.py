"""Named exposure sets: catdb exposures select/list/delete and every stage's --exposures, on the real Lowell night."""
import numpy as np
import psycopg
import pytest
from astropy.io import fits
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import CatdbError
from catdb.schema.tables import QUALITY_FLAGS
from catdb.stages import run_stage
from tests.lowell_night import needs_lowell, night_db_url

pytestmark = needs_lowell


def run(args, url, ok=True):
    r = CliRunner().invoke(cli, ["--db", url, "-q", *args], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    """The real night with exposure-summary FWHMs (and its few_sources flag: the last, dawn frame), relative
    zeropoints on the first 8 frames, one more frame flagged by hand."""
    url, info = night_db_url(pg_server, template_db)
    ids = info["exposure_ids"]
    with psycopg.connect(url) as c:
        run_stage("exposure-summary", conn=c)
        run_stage("calibrate", conn=c, where=f"e.id = ANY(ARRAY{ids[:8]})", params={"method": "relative"})
        c.execute("UPDATE exposure SET quality_flags = quality_flags | %s WHERE id = %s",
                  (QUALITY_FLAGS["background_outlier"], ids[3]))
        c.commit()
        # independent truth: AIRMASS from the stored FITS header, seeing from the summary
        hdr = c.execute("SELECT e.id, e.header, s.fwhm_median, e.quality_flags, e.band FROM exposure e "
                        "JOIN exposure_summary s ON s.exposure_id = e.id WHERE e.image_type = 'science' "
                        "ORDER BY e.id").fetchall()
        zp_ok = {r[0] for r in c.execute("SELECT exposure_id FROM zeropoint WHERE ok").fetchall()}
    truth = {eid: dict(airmass=fits.Header.fromstring(h, sep="\n")["AIRMASS"], seeing=fw, flags=fl, band=b,
                       zp=eid in zp_ok) for eid, h, fw, fl, b in hdr}
    return url, ids, truth


def saved(url, name):
    with psycopg.connect(url) as c:
        return sorted(r[0] for r in c.execute("SELECT exposure_id FROM exposure_set WHERE name = %s", (name,)))


def test_select_saves_what_the_criteria_say(night):
    url, ids, truth = night
    seeing = np.array([t["seeing"] for t in truth.values()])
    max_seeing = float(np.round(np.median(seeing), 2))  # about half the frames
    airmass = np.array([t["airmass"] for t in truth.values()])
    max_air = float(np.round(np.percentile(airmass, 75), 2))
    expect = sorted(e for e, t in truth.items() if t["seeing"] <= max_seeing and t["airmass"] <= max_air
                    and t["zp"] and t["flags"] == 0 and t["band"] == "VR")
    print(f"Lowell night: seeing {seeing.min():.2f}-{seeing.max():.2f} arcsec, airmass {airmass.min():.2f}-"
          f"{airmass.max():.2f}; set 'good' (seeing <= {max_seeing}, airmass <= {max_air}, zp, unflagged): "
          f"{len(expect)} of {len(truth)} frames")
    assert 0 < len(expect) < 8
    out = run(["exposures", "select", "--max-seeing", str(max_seeing), "--max-airmass", str(max_air),
               "--require-zeropoint", "--not-flagged", "--band", "VR", "--name", "good"], url).output
    assert saved(url, "good") == expect
    assert f"{len(expect)} exposures saved as set 'good'" in out
    printed = sorted(int(line.split()[0]) for line in out.splitlines()[1:-1])
    assert printed == expect
    # without --name: printed, not saved; --where narrows
    out = run(["exposures", "select", "--max-airmass", str(max_air), "--where", f"e.id <> {ids[0]}"], url).output
    n = sum(1 for e, t in truth.items() if t["airmass"] <= max_air and e != ids[0])
    assert f"{n} exposures (not saved" in out
    # the same name again replaces the set; its criteria are kept
    run(["exposures", "select", "--max-airmass", str(max_air), "--name", "good"], url)
    assert saved(url, "good") == sorted(e for e, t in truth.items() if t["airmass"] <= max_air)
    with psycopg.connect(url) as c:
        crit = c.execute("SELECT DISTINCT criteria FROM exposure_set WHERE name = 'good'").fetchall()
    assert crit == [({"max_airmass": max_air, "image_type": "science"},)]
    run(["exposures", "select", "--not-flagged", "--name", "clean"], url)
    listing = run(["exposures", "list"], url).output
    counts = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines()[1:]}
    n_clean = sum(t["flags"] == 0 for t in truth.values())
    assert n_clean <= len(truth) - 1  # the frame flagged by hand, and what the QA flagged
    assert counts == {"clean": n_clean, "good": len(saved(url, "good"))}
    assert len(saved(url, "clean")) == n_clean


def test_bad_criteria_are_refused(night):
    url = night[0]
    r = run(["exposures", "select", "--where", "e.no_such_column > 1", "--name", "x"], url, ok=False)
    assert r.exit_code == 1 and "no_such_column" in r.output and "--where" in r.output
    r = run(["exposures", "select", "--max-seeing", "-1"], url, ok=False)
    assert r.exit_code == 1 and "--max-seeing: expected a positive number" in r.output
    assert saved(url, "x") == []
    r = run(["exposures", "delete", "nope"], url, ok=False)
    assert r.exit_code == 1 and "no exposure set named 'nope'" in r.output


def test_stages_take_an_exposure_set(night):
    url, ids, _ = night
    name = "o'brien's frames"  # quoted as an SQL literal, not pasted
    run(["exposures", "select", "--where", f"e.id = ANY(ARRAY{ids[5:11]})", "--name", name], url)
    out = run(["stage", "exposure-summary", "--exposures", name], url).output
    assert "6 inputs" in out
    with psycopg.connect(url) as c:
        rid, inputs, params, where = c.execute(
            "SELECT id, input_ids, params, input_where FROM stage_run ORDER BY id DESC LIMIT 1").fetchone()
        assert sorted(inputs) == ids[5:11] and params["exposures"] == name and "o''brien" in where
        assert c.execute("SELECT count(*) FROM exposure_summary WHERE stage_run_id = %s", (rid,)).fetchone()[0] == 6
        # --where and --exposures together: the intersection
        res = run_stage("exposure-summary", conn=c, where=f"e.id >= {ids[8]}", exposures=name)
        assert sorted(c.execute("SELECT input_ids FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0]) \
            == ids[8:11]
        # a stage that selects by itself (calibrate) honours the set too
        res = run_stage("calibrate", conn=c, exposures=name, params={"method": "relative"})
        assert res.input_count == 6 and sorted(r[0] for r in c.execute(
            "SELECT exposure_id FROM zeropoint WHERE stage_run_id = %s", (res.run_id,))) == ids[5:11]
        c.commit()
        n_runs = c.execute("SELECT count(*) FROM stage_run").fetchone()[0]
        with pytest.raises(CatdbError, match="no exposure set named 'missing'; sets: .*o'brien's frames"):
            run_stage("exposure-summary", conn=c, exposures="missing")
        assert c.execute("SELECT count(*) FROM stage_run").fetchone()[0] == n_runs
    r = run(["stage", "exposure-summary", "--exposures", "missing"], url, ok=False)
    assert r.exit_code == 1 and "no exposure set named 'missing'" in r.output
    # deleting the set leaves the exposures; deleting an exposure drops it from its sets
    assert "deleted (6 exposures)" in run(["exposures", "delete", name], url).output
    with psycopg.connect(url) as c:
        clean = saved(url, "clean")
        c.execute("DELETE FROM exposure WHERE id = %s", (clean[-1],))
        c.commit()
    assert saved(url, "clean") == clean[:-1]
