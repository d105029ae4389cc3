"""Association: friends-of-friends, object statistics, incremental matching."""
import numpy as np
import pytest

from catdb.algorithms.association import (associate_to_objects, friends_of_friends,
                                          mover_candidate_mask, object_summary)
from catdb.errors import InputError


def same_partition(a, b):
    """True if two labelings group the items identically."""
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def star_field(rng, n_stars=300, n_epochs=20, sigma=0.3, ra0=150.0, dec0=2.0, size=0.3):
    ra_s = ra0 + rng.uniform(-size, size, n_stars) / np.cos(np.radians(dec0))
    dec_s = dec0 + rng.uniform(-size, size, n_stars)
    mag_s = rng.uniform(14, 20, n_stars)
    star = np.tile(np.arange(n_stars), n_epochs)
    expo = np.repeat(np.arange(n_epochs), n_stars)
    dec = dec_s[star] + rng.normal(0, sigma, star.size) / 3600
    ra = ra_s[star] + rng.normal(0, sigma, star.size) / 3600 / np.cos(np.radians(dec_s[star]))
    magerr = 0.01 + 0.02 * (mag_s[star] - 14) / 6
    mag = mag_s[star] + rng.normal(0, 1, star.size) * magerr
    return dict(ra=ra, dec=dec, ra_err=np.full(ra.size, sigma), dec_err=np.full(ra.size, sigma),
                mag=mag, magerr=magerr, exposure_id=expo, star=star,
                mjd=58568.1 + expo * 0.1 / 24 * 3, truth=(ra_s, dec_s, mag_s))


def test_fof_chain_and_separate():
    dec = np.array([10.0, 10.0 + 0.8 / 3600, 10.0 + 1.6 / 3600, 10.0 + 5 / 3600])
    ra = np.full(4, 20.0)
    lab = friends_of_friends(ra, dec, 1.0)
    assert lab[0] == lab[1] == lab[2] and lab[3] != lab[0]
    assert lab.tolist() == [0, 0, 0, 1]  # numbered by first appearance


def test_fof_ra_wrap_and_pole():
    ra = np.array([359.99997, 0.00002, 180.0, 0.0])
    dec = np.array([0.0, 0.0, 89.99995, 89.99995])
    lab = friends_of_friends(ra, dec, 0.5)
    assert lab[0] == lab[1]
    # two points 0.36" apart across the pole (RA differs by 180 deg)
    assert lab[2] == lab[3] and lab[2] != lab[0]


def test_fof_partitions_consistent_across_zone_edges():
    rng = np.random.default_rng(1)
    d = star_field(rng, n_stars=400, n_epochs=5, sigma=0.4, dec0=0.0, size=0.2)
    # tiny zones (36") so many objects straddle zone edges
    lab_zone = friends_of_friends(d["ra"], d["dec"], 1.5, partition_deg=0.01)
    lab_one = friends_of_friends(d["ra"], d["dec"], 1.5, partition_deg=None)
    assert np.array_equal(lab_zone, lab_one)
    # zones of 50 detections, the pairs merged into the components every 30 pairs
    lab_small = friends_of_friends(d["ra"], d["dec"], 1.5, zone_size=50, max_edges=30)
    assert np.array_equal(lab_small, lab_one)
    # isolated stars recover the truth grouping
    assert same_partition(lab_one, d["star"]) or len(np.unique(lab_one)) <= 400


def test_fof_bad_input_names_index():
    with pytest.raises(InputError, match="index 1"):
        friends_of_friends([1.0, np.nan], [0.0, 0.0], 1.0)
    with pytest.raises(InputError, match="radius"):
        friends_of_friends([1.0], [0.0], 0.0)


def test_summary_positions_photometry_and_variability():
    rng = np.random.default_rng(2)
    d = star_field(rng, n_stars=200, n_epochs=20, sigma=0.3)
    # star 0 is a variable with 0.3 mag amplitude
    var = d["star"] == 0
    d["mag"][var] += 0.3 * np.sin(np.arange(var.sum()))
    lab = friends_of_friends(d["ra"], d["dec"], 1.5)
    s = object_summary(lab, d["ra"], d["dec"], d["ra_err"], d["dec_err"], d["mag"], d["magerr"],
                       d["exposure_id"], d["mjd"])
    assert same_partition(lab, d["star"])  # sparse field: FoF recovers every star
    obj_of_star = np.zeros(200, int)
    obj_of_star[d["star"]] = lab
    ra_s, dec_s, mag_s = d["truth"]
    # mean position within 4 sigma of its error of the mean (0.3/sqrt(20) = 0.067")
    dra = (s["ra"][obj_of_star] - ra_s) * 3600 * np.cos(np.radians(dec_s))
    ddec = (s["dec"][obj_of_star] - dec_s) * 3600
    assert np.all(np.abs(dra) < 4 * s["ra_err"][obj_of_star])
    assert np.all(np.abs(ddec) < 4 * s["dec_err"][obj_of_star])
    assert np.allclose(s["ra_err"], 0.3 / np.sqrt(20), rtol=1e-6)
    assert np.all(s["n_detections"] == 20) and np.all(s["n_epochs"] == 20)
    # constant stars: chi2_red ~ 1; the variable stands out in chi2 and Stetson J
    const = np.ones(200, bool)
    const[0] = False
    chi = s["chi2_red"][obj_of_star[const]]
    assert 0.8 < np.median(chi) < 1.2
    v = obj_of_star[0]
    assert s["chi2_red"][v] > 10 * np.percentile(chi, 99)
    assert s["stetson_j"][v] > np.max(s["stetson_j"][obj_of_star[const]])
    assert np.all(np.abs(s["mag_mean"][obj_of_star[const]] - mag_s[const]) < 5 * s["mag_err"][obj_of_star[const]])
    # no static star is flagged as moving or orphan
    assert not s["mover_candidate"].any()


def test_slow_mover_chained_by_fof_is_flagged_moving():
    rng = np.random.default_rng(3)
    d = star_field(rng, n_stars=100, n_epochs=20, sigma=1.0)
    # mover at 9.3"/h: 0.1 h between exposures here -> 0.93" steps, chained at 1.5"
    t = np.arange(20) * 0.1
    mra = 150.05 + (4.0 * t / 3600) / np.cos(np.radians(2.0))
    mdec = 2.05 - 8.4 * t / 3600
    ra = np.concatenate([d["ra"], mra + rng.normal(0, 0.3, 20) / 3600])
    dec = np.concatenate([d["dec"], mdec + rng.normal(0, 0.3, 20) / 3600])
    expo = np.concatenate([d["exposure_id"], np.arange(20)])
    mjd = 58568.1 + expo * 0.1 / 24
    err = np.full(ra.size, 1.0)
    mag = np.concatenate([d["mag"], np.full(20, 18.0)])
    magerr = np.concatenate([d["magerr"], np.full(20, 0.02)])
    lab = friends_of_friends(ra, dec, 1.5)
    s = object_summary(lab, ra, dec, err, err, mag, magerr, expo, mjd)
    mover_objs = np.unique(lab[-20:])
    assert s["mover_candidate"][mover_objs].all()
    assert mover_candidate_mask(lab, s)[-20:].all()
    # the static stars (1" scatter) are not flagged
    star_objs = np.setdiff1d(np.unique(lab[:-20]), mover_objs)
    assert s["moving"][star_objs].mean() < 0.02
    big = mover_objs[np.argmax(s["n_detections"][mover_objs])]
    if s["n_detections"][big] >= 10:
        assert abs(s["rate_ra"][big] - 4.0) < 1.0 and abs(s["rate_dec"][big] + 8.4) < 1.0


def test_orphans():
    ra = np.array([10.0, 10.0, 11.0])
    dec = np.array([5.0, 5.0 + 0.2 / 3600, 5.0])
    lab = friends_of_friends(ra, dec, 1.0)
    s = object_summary(lab, ra, dec, np.ones(3), np.ones(3), np.full(3, 18.0), np.full(3, 0.1),
                       np.array([1, 2, 1]), min_epochs=2)
    assert s["orphan"].tolist() == [False, True]
    assert s["n_epochs"].tolist() == [2, 1]
    assert s["mover_candidate"].tolist() == [False, True]


def test_associate_one_detection_per_object_per_exposure():
    obj_ra = np.array([10.0, 10.01])
    obj_dec = np.array([0.0, 0.0])
    det_ra = np.array([10.0 + 0.5 / 3600, 10.0 + 0.2 / 3600, 10.01, 10.5])
    det_dec = np.zeros(4)
    idx, sep = associate_to_objects(obj_ra, obj_dec, det_ra, det_dec, 1.0, exposure_id=[7, 7, 7, 7])
    assert idx.tolist() == [-1, 0, 1, -1]
    assert sep[1] == pytest.approx(0.2, abs=1e-6) and np.isnan(sep[0])
    idx2, _ = associate_to_objects(obj_ra, obj_dec, det_ra, det_dec, 1.0)
    assert idx2.tolist() == [0, 0, 1, -1]
