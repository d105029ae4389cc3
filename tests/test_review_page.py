"""The candidate review page of catdb serve (/review), driven in headless Chromium.

The real Lowell night (MANIFEST ``lowell42-5945``, 23 frames reduced and extracted,
associated, movers run as tests/test_report.py runs them) is served on a free localhost
port; Debian's chromium, driven by selenium through Debian's chromedriver, loads
/review, classifies the first two candidates by keyboard (``c``, a comment, Esc, ``a``; then
``r``) and the test checks the rows in the database, that ``catdb export mpc`` then writes the
real one only, and takes a screenshot (``CATDB_REVIEW_SCREENSHOT=path`` keeps a copy, e.g.
docs/images/review.png).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("waitress", reason="waitress (the serve extra) is not installed")
from tests.lowell_night import needs_lowell, night_db_url  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, _ = night_db_url(pg_server, template_db, steps=("associate", "movers8"))
    c = connect(url)
    n = c.execute("SELECT count(*) FROM track WHERE status = 'candidate'").fetchone()[0]
    assert n >= 2, "the movers stage should find the two MANIFEST movers"
    yield url, c
    c.close()


@pytest.fixture(scope="module")
def server(night):
    from catdb.tap import create_server, stop_server

    srv, app = create_server(night[0], "127.0.0.1", 0, threads=4, timeout=60, reviewer="Test Reviewer")
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.effective_port}", app
    stop_server(srv, app, t)
    assert not t.is_alive()


def _req(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_posts_without_the_page_token_are_refused(night, server):
    base, app = server
    _, c = night
    tid = c.execute("SELECT min(id) FROM track WHERE status = 'candidate'").fetchone()[0]
    body = json.dumps({"track_id": tid, "decision": "real"}).encode()
    st, _, msg = _req(base + "/review/decision", body, {"Content-Type": "application/json"})
    assert st == 403 and b"token" in msg
    st, _, _ = _req(base + "/review/decision", body, {"Content-Type": "application/json",
                                                      "X-Catdb-Review-Token": "guess"})
    assert st == 403
    # a form post (what another site could make a browser send) is refused even with the token
    st, _, _ = _req(base + "/review/decision", b"track_id=1&decision=real",
                    {"Content-Type": "application/x-www-form-urlencoded", "X-Catdb-Review-Token": app.review.token})
    assert st == 415
    st, _, msg = _req(base + "/review/decision", json.dumps({"track_id": tid, "decision": "maybe"}).encode(),
                      {"Content-Type": "application/json", "X-Catdb-Review-Token": app.review.token})
    assert st == 400 and b"expected one of real, artefact, known" in msg
    assert c.execute("SELECT count(*) FROM track_review").fetchone()[0] == 0
    # a page under another host name that resolves here (DNS rebinding) cannot read the page or its token
    st, _, msg = _req(base + "/review", headers={"Host": "attacker.example:8080"})
    assert st == 403 and app.review.token.encode() not in msg
    st, _, _ = _req(base + "/review", headers={"Host": "localhost"})
    assert st == 200
    # the TAP service stays read-only next to it
    st, _, msg = _req(base + "/tap/sync?LANG=ADQL&QUERY=" + urllib.request.quote("DELETE FROM track_review"))
    assert st == 400


def test_figures_are_served(night, server):
    base, _ = server
    _, c = night
    tid = c.execute("SELECT min(id) FROM track WHERE status = 'candidate'").fetchone()[0]
    for what, ctype, magic in (("strip.png", "image/png", b"\x89PNG"), ("blink.gif", "image/gif", b"GIF89a"),
                               ("motion.png", "image/png", b"\x89PNG")):
        st, ct, body = _req(f"{base}/review/track/{tid}/{what}")
        assert st == 200 and ct == ctype and body.startswith(magic), (what, st, body[:200])
    # the blink is an animation: one frame per epoch (up to 12) of the track's images
    from PIL import Image
    import io

    _, _, gif = _req(f"{base}/review/track/{tid}/blink.gif")
    n_det = c.execute("SELECT count(*) FROM track_detection WHERE track_id = %s", (tid,)).fetchone()[0]
    assert Image.open(io.BytesIO(gif)).n_frames == min(12, n_det)
    assert _req(f"{base}/review/track/999999999/strip.png")[0] == 404


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="Debian's chromium and chromium-driver are not installed (make test installs them)")
def test_classify_two_candidates_by_keyboard_in_chromium(night, server, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extra) is not installed")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    url, c = night
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1500"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(300)
        driver.get(base + "/review")
        cards = driver.find_elements(By.CSS_SELECTOR, "section.cand")
        ids = [int(x.get_attribute("data-track")) for x in cards]
        assert ids == [r[0] for r in c.execute("SELECT id FROM track WHERE status = 'candidate' ORDER BY id")]
        assert "Test Reviewer" in driver.find_element(By.ID, "reviewer").text
        wait = WebDriverWait(driver, 120)
        # the images of the first candidate are loaded (the strip, the blink, the motion fit)
        for what in ("strip.png", "blink.gif", "motion.png"):
            img = cards[0].find_element(By.CSS_SELECTOR, f"img[src$='{what}']")
            wait.until(lambda d, img=img: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        body = driver.find_element(By.TAG_NAME, "body")
        # first candidate: c, a comment, Esc, a -> artefact with the comment; the page moves on to the second
        body.send_keys("c")
        box = cards[0].find_element(By.CSS_SELECTOR, "textarea.comment")
        assert driver.switch_to.active_element == box
        box.send_keys("jumps by 0.7 mag, <b>not</b> one object")   # typed keys are text, not shortcuts
        box.send_keys(Keys.ESCAPE)
        body.send_keys("a")
        wait.until(lambda d: cards[0].get_attribute("data-decision") == "artefact")
        assert "current" in cards[1].get_attribute("class")
        # second: r -> real
        body.send_keys("r")
        wait.until(lambda d: cards[1].get_attribute("data-decision") == "real")
        assert driver.find_element(By.ID, "n-reviewed").text == "2"
        assert "artefact" in cards[0].find_element(By.CSS_SELECTOR, ".history").text
        shot = tmp_path / "review.png"
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    rows = c.execute("SELECT v.track_id, v.decision, v.comment, v.reviewer, v.decided_at IS NOT NULL, r.stage, "
                     "r.status FROM track_review v JOIN stage_run r ON r.id = v.stage_run_id "
                     "ORDER BY v.id").fetchall()
    c.commit()
    assert rows == [(ids[0], "artefact", "jumps by 0.7 mag, <b>not</b> one object", "Test Reviewer", True,
                     "review", "ok"),
                    (ids[1], "real", None, "Test Reviewer", True, "review", "ok")]
    # the comment comes back escaped on a reload, as text
    st, _, page = _req(base + "/review")
    assert b"&lt;b&gt;not&lt;/b&gt; one object" in page and b"<b>not</b>" not in page
    # the MPC export now takes the real candidate only
    from click.testing import CliRunner

    from catdb.cli.main import cli
    from catdb.export.mpc import parse_mpc80

    out = tmp_path / "c.mpc"
    r = CliRunner().invoke(cli, ["--db", url, "export", "mpc", "-o", str(out), "--obscode", "688"])
    assert r.exit_code == 0, r.output
    assert set(parse_mpc80(out)["designation"]) == {f"cdb{ids[1]:04d}"}
    assert "left out: 1 artefact" + (f", {len(ids) - 2} unreviewed" if len(ids) > 2 else " (") in r.output
    # the screenshot: a rendered page (cutouts, plots), not a blank one
    from matplotlib.image import imread

    img = imread(shot)
    grey = (img[..., :3].mean(axis=2) * 255).astype(int)
    assert img.shape[1] >= 1300 and len(np.unique(grey)) > 100 and grey.std() > 20
    keep = os.environ.get("CATDB_REVIEW_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
