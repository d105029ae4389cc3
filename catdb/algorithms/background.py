"""Sky-background statistics of an image with its sources masked.

Used by the ``qa-background`` stage: one call per exposure, then
:func:`catdb.algorithms.robust.iqr_outliers` over the exposures of each night
flags frames with abnormal background (clouds, twilight, moonlight), as
Automatic-SSOs does (``autossos/magcalib.py:imgstats``: photutils
``make_source_mask(nsigma=2, npixels=5, dilate_size=11)`` then astropy
``sigma_clipped_stats(sigma=3)``).  photutils 2+ removed ``make_source_mask``;
the same mask is built here from :func:`photutils.segmentation.detect_threshold`,
:func:`~photutils.segmentation.detect_sources` and
:meth:`~photutils.segmentation.SegmentationImage.make_source_mask`.

Raw frames (e.g. Lowell 42-inch) still carry their overscan: the stage removes it first
with :func:`catdb.algorithms.reduce.overscan_trim` (the one overscan/trim of catdb).
"""
from __future__ import annotations

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats

__all__ = ["source_mask", "background_stats"]


def source_mask(image, mask=None, nsigma=2.0, npixels=5, dilate_size=11):
    """Boolean mask of the sources in an image (photutils segmentation).

    Equivalent of the removed ``photutils.make_source_mask``: pixels above
    ``nsigma`` times the sigma-clipped background rms
    (:func:`~photutils.segmentation.detect_threshold`) in groups of at least
    ``npixels`` connected pixels, dilated by a ``dilate_size`` square.

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        Image (ADU), overscan removed.
    mask : numpy.ndarray of bool, shape (ny, nx), optional
        Pixels to ignore (bad pixels), True = ignore.
    nsigma : float
        Detection threshold in background sigma.
    npixels : int
        Minimum connected pixels of a source.
    dilate_size : int
        Side of the square dilation footprint (pixels); 0 or 1 for none.

    Returns
    -------
    numpy.ndarray of bool, shape (ny, nx)
        True on source pixels.
    """
    from photutils.segmentation import detect_sources, detect_threshold

    threshold = detect_threshold(image, nsigma, mask=mask,
                                 sigma_clip=SigmaClip(sigma=3.0, maxiters=10))
    segm = detect_sources(image, threshold, npixels, mask=mask)
    if segm is None:
        return np.zeros(image.shape, bool)
    if dilate_size and dilate_size > 1:
        return segm.make_source_mask(size=int(dilate_size))
    return segm.make_source_mask()


def background_stats(image, mask=None, sigma=3.0, maxiters=10, nsigma=2.0, npixels=5,
                     dilate_size=11):
    """Sigma-clipped background statistics with the sources masked.

    Parameters
    ----------
    image : array_like, shape (ny, nx)
        Image in ADU, already overscan-subtracted and trimmed (see
        :func:`catdb.algorithms.reduce.overscan_trim`); NaN pixels are ignored.
    mask : array_like of bool, shape (ny, nx), optional
        Extra pixels to ignore (True = bad).
    sigma : float
        Clipping threshold of :func:`astropy.stats.sigma_clipped_stats`.
    maxiters : int
        Maximum clipping iterations.
    nsigma, npixels, dilate_size
        Source-mask parameters, see :func:`source_mask` (Automatic-SSOs'
        values 2, 5, 11).

    Returns
    -------
    dict
        ``mean``, ``median``, ``std`` (sigma-clipped, ADU) of the non-source
        pixels; ``mad`` (median absolute deviation from the median, ADU, raw as
        in Automatic-SSOs) and ``mad_std`` (1.4826 ``mad``) of the same
        pixels; ``n_pixels`` used and ``source_fraction`` (fraction of valid
        pixels masked as sources).

    Raises
    ------
    ValueError
        If ``image`` is not 2-D, ``mask`` has another shape, or no valid pixel
        remains.
    """
    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    bad = ~np.isfinite(img)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != img.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {img.shape}")
        bad |= mask
    if bad.all():
        raise ValueError("no valid pixel in image")
    src = source_mask(np.where(bad, 0.0, img), mask=bad, nsigma=nsigma, npixels=npixels,
                      dilate_size=dilate_size)
    use = ~(bad | src)
    if not use.any():
        raise ValueError("every pixel is masked as a source or bad")
    mean, median, std = sigma_clipped_stats(img, mask=~use, sigma=sigma, maxiters=maxiters)
    pix = img[use]
    mad = float(np.median(np.abs(pix - median)))
    return dict(mean=float(mean), median=float(median), std=float(std), mad=mad,
                mad_std=1.482602218505602 * mad, n_pixels=int(use.sum()),
                source_fraction=float(src[~bad].mean()))
