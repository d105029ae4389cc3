"""Ensemble (ubercal-style) photometric calibration: one zeropoint per exposure, one mean magnitude per star.

Used by the ``calibrate`` stage (``method=ensemble``, :mod:`catdb.stages.calibrate`), which
selects the measurements from the database; this module is pure numpy/scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import lsqr

__all__ = ["EnsembleSolution", "ensemble_solve"]


@dataclass
class EnsembleSolution:
    """Result of :func:`ensemble_solve`.

    Attributes
    ----------
    zp, zp_err : numpy.ndarray, shape (n_exp,)
        Zeropoint of every exposure (mag; ``calibrated = inst + zp``) and its error
        (formal variance from the normal equations, scaled by the reduced chi^2 when above 1);
        NaN for exposures not tied to the reference (no star in common, or fewer than ``min_stars`` kept stars).
    mean_mag : numpy.ndarray, shape (n_star,)
        Calibrated mean magnitude of every star (NaN for stars not solved).
    used : numpy.ndarray of bool, shape (N,)
        Measurements used in the final solution.
    star_ok : numpy.ndarray of bool, shape (n_star,)
        Stars kept (False: rejected as variable / outlier, or too few exposures).
    residual : numpy.ndarray, shape (N,)
        ``inst + zp[exp] - mean_mag[star]`` (mag).
    n_stars, n_used : numpy.ndarray of int, shape (n_exp,)
        Stars measured on, and kept in, each exposure.
    scatter : numpy.ndarray, shape (n_exp,)
        Robust (1.4826 MAD) scatter of each exposure's used residuals (mag).
    chi2_red : float
        Reduced chi^2 of the final solution.
    iterations : int
        Rejection iterations run.
    """

    zp: np.ndarray
    zp_err: np.ndarray
    mean_mag: np.ndarray
    used: np.ndarray
    star_ok: np.ndarray
    residual: np.ndarray
    n_stars: np.ndarray
    n_used: np.ndarray
    scatter: np.ndarray
    chi2_red: float
    iterations: int


def _zp_variance(e, s, w2, n_exp, n_star, ref_exp, tied):
    """Variances of the zeropoints (all but the reference) from the normal equations.

    The star magnitudes are eliminated exactly (Schur complement of the sparse normal matrix,
    ``S = D_zp - B D_star^-1 B^T``, a dense ``(n_exp - 1)^2`` matrix); ``diag(S^-1)`` is the
    unscaled variance of each zeropoint.  Exposures not tied to the reference get NaN.
    """
    d_star = np.bincount(s, weights=w2, minlength=n_star)
    B = coo_matrix((w2, (e, s)), shape=(n_exp, n_star)).tocsr()
    inv = np.divide(1.0, d_star, out=np.zeros(n_star), where=d_star > 0)
    S = np.diag(np.bincount(e, weights=w2, minlength=n_exp)) - (B.multiply(inv) @ B.T).toarray()
    keep = tied.copy()
    keep[ref_exp] = False
    var = np.full(n_exp, np.nan)
    if keep.any():
        var[keep] = np.diag(np.linalg.pinv(S[np.ix_(keep, keep)]))
    return np.delete(var, ref_exp)


def ensemble_solve(exp_idx, star_idx, mag, err, n_exp, n_star, *, ref_exp=0, zp_ref=0.0, clip_sigma=3.0,
                   err_floor=0.005, min_exposures=3, min_stars=3, maxiter=10) -> EnsembleSolution:
    """Ensemble photometry: one zeropoint per exposure and one mean magnitude per star.

    Solves, in the weighted least-squares sense, ``inst[k] + zp[exp[k]] = M[star[k]]`` for all
    measurements ``k`` at once (Honeycutt 1992, PASP 104, 435, "CCD ensemble photometry on an
    inhomogeneous set of exposures"; Padmanabhan et al. 2008, ApJ 674, 1217 for the sparse
    "ubercal" formulation), with the gauge fixed by ``zp[ref_exp] = zp_ref``.  The sparse system
    (weights ``1 / sqrt(err^2 + err_floor^2)``, columns scaled to unit norm) is solved with
    :func:`scipy.sparse.linalg.lsqr` (Paige & Saunders 1982, ACM TOMS 8, 43); the zeropoint
    errors come from the normal equations with the star magnitudes eliminated (Schur complement).
    Stars whose normalised residual rms ``sqrt(mean((r / err)^2))`` exceeds ``median + clip_sigma * 1.4826 MAD`` of
    all stars' values are rejected (variables, blends), as are single measurements with
    ``|r / err| > 1.5 clip_sigma`` times the robust (1.4826 MAD) scatter of all normalised
    residuals (cosmic rays, bad pixels; the looser factor keeps the Gaussian tail); the solution is
    repeated until nothing more is rejected (at most ``maxiter`` times).

    Parameters
    ----------
    exp_idx, star_idx : array_like of int, shape (N,)
        Exposure index (0..n_exp-1) and star index (0..n_star-1) of every measurement.
    mag, err : array_like of float, shape (N,)
        Instrumental magnitude and its error (mag).
    n_exp, n_star : int
    ref_exp : int
        Index of the reference exposure (its zeropoint is ``zp_ref``).
    zp_ref : float
        Zeropoint of the reference exposure (mag).
    clip_sigma : float
        Rejection threshold (robust sigmas).
    err_floor : float
        Added in quadrature to ``err`` (mag).
    min_exposures : int
        A star must be kept on at least this many exposures.
    min_stars : int
        An exposure needs this many kept stars for a zeropoint.
    maxiter : int
        Most rejection iterations.

    Returns
    -------
    EnsembleSolution

    Raises
    ------
    ValueError
        Arrays of different shapes, indices out of range, or ``ref_exp`` outside 0..n_exp-1.
    """
    e = np.asarray(exp_idx, dtype=np.int64)
    s = np.asarray(star_idx, dtype=np.int64)
    m = np.asarray(mag, dtype=float)
    w_err = np.sqrt(np.asarray(err, dtype=float) ** 2 + err_floor ** 2)
    if not (e.shape == s.shape == m.shape == w_err.shape) or e.ndim != 1:
        raise ValueError(f"exp_idx, star_idx, mag, err must be 1-D of one length; got shapes "
                         f"{e.shape}, {s.shape}, {m.shape}, {w_err.shape}")
    if e.size and (e.min() < 0 or e.max() >= n_exp or s.min() < 0 or s.max() >= n_star):
        raise ValueError("exposure or star index out of range")
    if not 0 <= ref_exp < n_exp:
        raise ValueError(f"ref_exp {ref_exp} outside 0..{n_exp - 1}")
    good = np.isfinite(m) & np.isfinite(w_err)
    star_ok = np.ones(n_star, bool)
    zp = np.full(n_exp, np.nan)
    zp_err = np.full(n_exp, np.nan)
    mean = np.full(n_star, np.nan)
    resid = np.full(e.size, np.nan)
    chi2 = np.nan
    it = 0
    for it in range(1, maxiter + 1):  # noqa: B007 (rejection iterations; `it` counts them after the loop)
        used = good & star_ok[s]
        # stars on too few exposures carry no information on the zeropoints
        n_per_star = np.bincount(s[used], minlength=n_star)
        star_ok &= n_per_star >= min_exposures
        used &= star_ok[s]
        # exposures tied to the reference through shared stars (bipartite graph)
        k = np.flatnonzero(used)
        graph = coo_matrix((np.ones(k.size), (e[k], n_exp + s[k])), shape=(n_exp + n_star,) * 2)
        _, lab = connected_components(graph, directed=False)
        tied = lab[:n_exp] == lab[ref_exp]
        used &= tied[e]
        k = np.flatnonzero(used)
        if k.size == 0:
            break
        # unknowns: zp of every exposure but the reference, then M of every star
        col_e = np.where(np.arange(n_exp) < ref_exp, np.arange(n_exp), np.arange(n_exp) - 1)
        w = 1.0 / w_err[k]
        rows = np.arange(k.size)
        not_ref = e[k] != ref_exp
        A = coo_matrix((np.concatenate([w[not_ref], -w]),
                        (np.concatenate([rows[not_ref], rows]),
                         np.concatenate([col_e[e[k]][not_ref], n_exp - 1 + s[k]]))),
                       shape=(k.size, n_exp - 1 + n_star)).tocsr()
        b = -(m[k] + np.where(not_ref, 0.0, zp_ref)) * w
        # column equilibration (unit column norms): the bright stars' columns weigh 100x the faint
        # ones'; scaled, lsqr converges in tens of iterations instead of ~1000
        norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
        scale = 1.0 / np.where(norms > 0, norms, 1.0)
        sol = lsqr(A @ diags(scale), b, atol=1e-10, btol=1e-10, iter_lim=20 * (n_exp + n_star) + 1000)
        x = sol[0] * scale
        zp = np.full(n_exp, np.nan)
        zp_err = np.full(n_exp, np.nan)
        zp[tied] = np.insert(x[:n_exp - 1], ref_exp, zp_ref)[tied]
        zp_var = np.insert(_zp_variance(e[k], s[k], w ** 2, n_exp, n_star, ref_exp, tied), ref_exp, 0.0)
        mean = np.where(np.bincount(s[k], minlength=n_star) > 0, x[n_exp - 1:], np.nan)
        resid = m + zp[e] - mean[s]
        norm = resid / w_err
        dof = max(k.size - (int(tied.sum()) - 1) - int(np.unique(s[k]).size), 1)
        chi2 = float(np.sum(norm[k] ** 2) / dof)
        zp_err[tied] = np.sqrt(zp_var[tied] * max(chi2, 1.0))
        # rejection: variable stars, then single outlying measurements
        rms = np.sqrt(np.bincount(s[k], weights=norm[k] ** 2, minlength=n_star)
                      / np.maximum(np.bincount(s[k], minlength=n_star), 1))
        active = np.bincount(s[k], minlength=n_star) > 0
        med = np.median(rms[active])
        mad = 1.482602218505602 * np.median(np.abs(rms[active] - med))
        bad_star = active & (rms > med + clip_sigma * max(mad, 1e-6))
        sig = 1.482602218505602 * np.median(np.abs(norm[k]))
        bad_meas = np.zeros(e.size, bool)
        bad_meas[k] = np.abs(norm[k]) > clip_sigma * max(sig, 1e-6) * 1.5
        if not bad_star.any() and not bad_meas.any():
            break
        star_ok &= ~bad_star
        good &= ~bad_meas
    used = good & star_ok[s] & np.isfinite(zp[e]) & np.isfinite(mean[s])
    n_stars = np.bincount(e[good], minlength=n_exp)
    n_used = np.bincount(e[used], minlength=n_exp)
    scatter = np.full(n_exp, np.nan)
    order = np.argsort(e[used], kind="stable")
    ru, eu = resid[used][order], e[used][order]
    bounds = np.searchsorted(eu, np.arange(n_exp + 1))
    for i in range(n_exp):  # loop over exposures
        r = ru[bounds[i]:bounds[i + 1]]
        if r.size:
            scatter[i] = 1.482602218505602 * np.median(np.abs(r - np.median(r)))
    few = n_used < min_stars
    zp[few], zp_err[few] = np.nan, np.nan
    used &= ~few[e]
    return EnsembleSolution(zp, zp_err, mean, used, star_ok & np.isfinite(mean), resid, n_stars, n_used,
                            scatter, chi2, it)
