"""Real-space knowledge about macromolecular density (the priors of density modification).

What a map of a macromolecule in solvent is known to look like, whatever the data say:

* **positivity**: density is positive against the solvent level (the mean density of the
  solvent region);
* **flat solvent**: outside the molecule the density is flat, at the solvent level;
* **expected volume**: the molecule occupies about ``mass * 1.23`` Å³/Da (PDBx/mmCIF,
  ``_exptl_crystal.density_percent_sol``: partial specific volume 0.74 cm³/g, i.e. a protein
  density of 1.35 g/cm³);
* **connectivity**: a particle is one connected body; small blobs of density away from it are
  noise.

The functions here are pure real-space operations on ``(nz, ny, nx)`` float32 volumes, in
voxels. :func:`prior_density` combines them into the non-negative "prior density" that the
interpretation map (:mod:`locband.engine.denoise`) uses to predict where each band's signal
lies. Each prior can be switched off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from locband.engine import _fft, _slabs
from locband.engine._grid import frequency_squared

__all__ = ["EnvelopeSpec", "gaussian_smooth", "solvent_level", "apply_positivity", "flatten_solvent",
           "envelope_from_map", "remove_isolated_blobs", "prior_density"]

#: 26-connectivity: voxels touching at a corner belong to the same blob
_CONNECT = np.ones((3, 3, 3), dtype=bool)


def gaussian_smooth(volume: npt.NDArray[np.float32], sigma_voxels: float, *, workers: int = 1,
                    backend: str | None = None) -> npt.NDArray[np.float32]:
    """Periodic Gaussian smoothing of ``sigma_voxels`` (in Fourier space; a new array)."""
    if sigma_voxels <= 0:
        return np.array(volume, dtype=np.float32)
    s2 = frequency_squared(volume.shape, tuple(1.0 / n for n in volume.shape))
    spec = _fft.rfftn(volume, workers=workers, backend=backend)
    spec *= np.exp(np.float32(-2.0 * np.pi ** 2 * sigma_voxels ** 2) * s2)
    return _fft.irfftn(spec, volume.shape, overwrite_input=True, workers=workers, backend=backend)


def solvent_level(volume: npt.NDArray[np.float32], envelope: npt.NDArray[np.float32] | None) -> float:
    """Mean density of the solvent: the voxels where ``envelope < 0.5``.

    Without an envelope, or if the envelope leaves no solvent, the median of the volume (in
    a box that is mostly solvent, the solvent level; otherwise a conservative stand-in).
    """
    if envelope is not None:
        total, count = 0.0, 0
        step = _slab(volume)
        for z in range(0, volume.shape[0], step):  # no full-size temporaries
            solvent = envelope[z:z + step] < 0.5
            total += float(volume[z:z + step][solvent].sum(dtype=np.float64))
            count += int(np.count_nonzero(solvent))
        if count:
            return total / count
    return float(np.median(volume))


def _slab(volume: npt.NDArray[np.float32]) -> int:
    """Planes per slab of a volume for work without full-size temporaries (about 2^20 values)."""
    return max(1, 2 ** 20 // max(1, int(volume[0].size)))


def apply_positivity(volume: npt.NDArray[np.float32], level: float) -> npt.NDArray[np.float32]:
    """Density below the solvent ``level`` raised to it (a new array)."""
    return np.maximum(volume, np.float32(level))


def flatten_solvent(volume: npt.NDArray[np.float32], envelope: npt.NDArray[np.float32],
                    level: float) -> npt.NDArray[np.float32]:
    """``level + envelope * (volume - level)``: the solvent (envelope 0) flat at ``level``."""
    lv = np.float32(level)
    out = volume - lv
    out *= envelope
    out += lv
    return out


@dataclass(frozen=True)
class EnvelopeSpec:
    """How to find the molecular envelope from a map.

    Attributes
    ----------
    sigma_voxels : float
        Gaussian smoothing (voxels) before thresholding: the envelope follows the map at the
        resolution of this smoothing.
    noise_sd : float
        Standard deviation of the noise of the smoothed map (sets the threshold without a
        volume).
    z : float
        Threshold in noise standard deviations above the solvent level (without a volume).
    volume_voxels : float or None
        Expected molecular volume in voxels; when given, the threshold is set so that the
        envelope's core holds this many voxels.
    """

    sigma_voxels: float
    noise_sd: float
    z: float = 3.0
    volume_voxels: float | None = None


def envelope_from_map(smoothed: npt.NDArray[np.float32], spec: EnvelopeSpec, *,
                      connectivity: bool = True, min_blob_fraction: float = 0.05, workers: int = 1,
                      backend: str | None = None) -> npt.NDArray[np.float32]:
    """A soft molecular envelope in [0, 1] from a map smoothed by ``spec.sigma_voxels``.

    Parameters
    ----------
    smoothed : (nz, ny, nx) ndarray of float32
        The map after Gaussian smoothing of ``spec.sigma_voxels`` voxels.
    spec : EnvelopeSpec
        Smoothing, noise level, threshold and (optionally) the expected volume.
    connectivity : bool
        Drop the envelope's islands smaller than ``min_blob_fraction`` of the largest one.
    min_blob_fraction : float
        See ``connectivity``.
    workers : int
        FFT threads (smoothing).
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        1 in the core, 0 in the solvent, with a soft edge outside the core.

    Notes
    -----
    Core: ``smoothed > level + z * noise_sd`` (``level`` the median, i.e. the solvent level of
    a box that is mostly solvent), or the ``volume_voxels`` highest voxels when a volume is
    given. The edge is ``(smoothed - level) / (threshold - level)`` clipped to [0, 1]: it
    follows the smoothed map down to the solvent level. With ``connectivity`` the edge is
    kept only near the remaining core (within about ``sigma_voxels / 2``), so dropped islands
    leave no halo.
    """
    level = float(np.median(smoothed))
    if spec.volume_voxels is not None:
        n = int(np.clip(round(spec.volume_voxels), 1, smoothed.size))
        threshold = float(np.partition(smoothed.ravel(), smoothed.size - n)[smoothed.size - n])
        core = smoothed >= threshold
    else:
        threshold = level + spec.z * spec.noise_sd
        core = smoothed > np.float32(threshold)
    if connectivity:
        core = _drop_small_islands(core, min_blob_fraction)
    # soft edge from the smoothed map itself: 1 in the core, falling linearly to 0 at the solvent
    # level just outside it (the smoothing sets its width); removed islands stay 0
    span = threshold - level
    soft = (smoothed - np.float32(level)) * np.float32(1.0 / span) if span > 0 else core.astype(np.float32)
    np.clip(soft, 0.0, 1.0, out=soft)
    soft[core] = 1.0
    if connectivity:
        near = gaussian_smooth(core[::2, ::2, ::2].astype(np.float32), spec.sigma_voxels / 2, workers=workers,
                               backend=backend) > np.float32(0.05)
        soft *= _upsample_mask(near, core.shape)
    return np.asarray(soft, dtype=np.float32)


def _upsample_mask(coarse: npt.NDArray[np.bool_], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """A mask on a ``[::2]`` subsampled grid back on the full grid (nearest sample)."""
    idx = np.ix_(*[np.minimum(np.arange(n) // 2, c - 1) for n, c in zip(shape, coarse.shape, strict=True)])
    return np.asarray(coarse[idx])


def _drop_small_islands(core: npt.NDArray[np.bool_], fraction: float) -> npt.NDArray[np.bool_]:
    labels, n = ndimage.label(core, structure=_CONNECT)
    if n <= 1:
        return core
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= fraction * sizes.max()
    return np.asarray(keep[labels])


def remove_isolated_blobs(density: npt.NDArray[np.float32], *, threshold: float, min_voxels: float,
                          distance_voxels: float, workers: int = 1, backend: str | None = None
                          ) -> npt.NDArray[np.float32]:
    """Density ``>= 0`` with small blobs far from the main density set to 0.

    Parameters
    ----------
    density : (nz, ny, nx) ndarray of float32
        Non-negative density relative to the solvent level.
    threshold : float
        Blobs are the connected components (26-connectivity) of ``density > threshold``.
    min_voxels : float
        Blobs with at least this many voxels are "main density" and always kept.
    distance_voxels : float
        Smaller blobs are kept when they come within about this distance of main density
        (a ligand next to the protein), and removed otherwise.
    workers : int
        FFT threads (smoothing).
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        A new array; the voxels of removed blobs (above the threshold) are 0.

    Notes
    -----
    "Near" is measured by blurring the main density's support with a Gaussian of
    ``distance_voxels`` and keeping what it reaches at 1 % of its peak (on a grid subsampled
    by 2).
    """
    out = np.array(density, dtype=np.float32)
    _drop_isolated_blobs(out, threshold=threshold, min_voxels=min_voxels, distance_voxels=distance_voxels,
                         workers=workers, backend=backend)
    return out


def _drop_isolated_blobs(density: npt.NDArray[np.float32], *, threshold: float, min_voxels: float,
                         distance_voxels: float, workers: int, backend: str | None) -> None:
    """:func:`remove_isolated_blobs` in place.

    Blobs are labelled only inside the smallest box that holds every voxel above the threshold:
    their sizes and where they touch are the same as in the whole box, at the cost of that box
    (a particle in a box mostly of solvent: a fraction of it).
    """
    above = density > np.float32(threshold)
    box = _bounding_box(above)
    if box is None:
        return
    labels, n = ndimage.label(above[box], structure=_CONNECT)
    del above
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = sizes >= min_voxels
    if not big[1:].any():  # nothing qualifies as main density: keep the largest blob as such
        big[int(np.argmax(sizes))] = True
    small_blob = ~big
    small_blob[0] = False
    if not small_blob.any():  # every blob is main density: nothing to remove
        return
    # "near" on a grid subsampled by 2 (a quarter of the distance in its voxels is plenty for a
    # 1 % contour of a Gaussian of the whole distance; 8 times cheaper than the full grid)
    coarse = np.zeros(tuple((m + 1) // 2 for m in density.shape), np.float32)
    main = big[labels[tuple(slice(b.start % 2, None, 2) for b in box)]]  # the box's voxels of the [::2] grid
    coarse[tuple(slice((b.start + 1) // 2, (b.stop + 1) // 2) for b in box)] = main
    near = gaussian_smooth(coarse, max(distance_voxels, 1.0) / 2, workers=workers,
                           backend=backend) > np.float32(0.01)
    near = near[np.ix_(*[np.minimum(np.arange(b.start, b.stop) // 2, c - 1)
                         for b, c in zip(box, near.shape, strict=True)])]  # back on the box's voxels
    small = small_blob[labels]
    keep = np.zeros(n + 1, dtype=bool)
    keep[labels[small & near]] = True  # small blobs that come near main density
    small &= ~keep[labels]
    density[box][small] = 0.0


def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, ...] | None:
    """The smallest box of slices holding every true voxel of ``mask`` (None: none is)."""
    out = []
    for axis in range(mask.ndim):
        others = tuple(k for k in range(mask.ndim) if k != axis)
        hit = np.flatnonzero(np.any(mask, axis=others))
        if hit.size == 0:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def prior_density(volume: npt.NDArray[np.float32], *, envelope: npt.NDArray[np.float32] | None,
                  positivity: bool = True, connectivity: bool = True, blob_threshold: float = 0.0,
                  blob_min_voxels: float = 0.0, blob_distance_voxels: float = 0.0, workers: int = 1,
                  backend: str | None = None, out: npt.NDArray[np.float32] | None = None
                  ) -> tuple[npt.NDArray[np.float32], float]:
    """The density the priors expect, relative to the solvent level, and that level.

    Parameters
    ----------
    volume : (nz, ny, nx) ndarray of float32
        The current estimate of the map.
    envelope : (nz, ny, nx) ndarray of float32 or None
        Soft molecular envelope in [0, 1] (flat solvent outside); None: no flat-solvent prior.
    positivity : bool
        Density below the solvent level is raised to it. Without positivity the magnitude of
        the deviation from the solvent level is used (density and "negative density" alike).
    connectivity : bool
        Remove small isolated blobs (:func:`remove_isolated_blobs` with the ``blob_*``
        settings; skipped when ``blob_min_voxels`` is 0).
    blob_threshold, blob_min_voxels, blob_distance_voxels : float
        See :func:`remove_isolated_blobs`.
    workers : int
        FFT threads (smoothing).
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.
    out : (nz, ny, nx) ndarray of float32, optional
        Where to make the density (a C-contiguous buffer the caller reuses; not ``volume``).

    Returns
    -------
    density : (nz, ny, nx) ndarray of float32
        ``>= 0``; 0 in the solvent (with an envelope) and wherever the priors rule density out.
    level : float
        The solvent level the density is measured from.

    Notes
    -----
    ``P = flatten_solvent(apply_positivity(volume, level), envelope, level)`` and the density
    is ``P - level`` (``|P - level|`` without positivity), then isolated blobs are removed.
    """
    level = solvent_level(volume, envelope)
    lv = np.float32(level)
    p = np.empty(volume.shape, np.float32) if out is None else out

    def work(z0: int, z1: int) -> None:  # the same operations slab by slab: no full-size temporaries
        part = p[z0:z1]
        if positivity:  # apply_positivity
            np.maximum(volume[z0:z1], lv, out=part)
        else:
            part[...] = volume[z0:z1]
        if envelope is not None:  # flatten_solvent
            part -= lv
            part *= envelope[z0:z1]
            part += lv
        part -= lv
        if not positivity:
            np.abs(part, out=part)

    rows = _slabs.slab_rows(volume.shape[0], int(np.prod(volume.shape[1:])), np)
    _slabs.run(work, volume.shape[0], rows=rows, workers=workers)
    if connectivity and blob_min_voxels > 0:
        _drop_isolated_blobs(p, threshold=blob_threshold, min_voxels=blob_min_voxels,
                             distance_voxels=blob_distance_voxels, workers=workers, backend=backend)
    return p, level
