"""Conditioning of commodity-WiFi CSI: the clean-up every CSI detector needs first.

Commodity NICs report CSI ``H[k]`` corrupted per packet by a random common phase (carrier
frequency offset, CFO), a random linear phase across subcarriers (symbol timing offset,
STO / packet-detection delay), automatic gain control (AGC) steps, null/guard/DC
subcarriers and irregular packet timing with bursty loss. These functions remove or
handle the WiFi-specific ones; they follow scipy conventions: array in, array out,
``axis=`` for the axis they work along, ``fs=`` in Hz, no hidden state. The generic steps
(irregular packets onto a uniform grid, outliers) are in :mod:`sensing.dsp`.

Typical single-antenna chain (ESP32)::

    mask = lltf_data_mask(frames.subcarriers)               # 52 data subcarriers
    h = frames.data[:, mask, 0, 0]                          # (n_packets, 52) complex
    h = sanitize_phase(h, frames.subcarriers[mask], axis=1) # CFO + STO removed
    h, gain = normalize_amplitude(h, axis=1)                # AGC removed
    y, t, n = sensing.dsp.resample_uniform(h, frames.times_s, fs=10.0)  # 10 Hz grid

With two or more receive antennas (Intel 5300, Nexmon on multi-core chips) the CSI ratio
between antennas (:func:`csi_ratio`) cancels CFO, STO and AGC in one step (FarSense).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from sensing.dsp import robust_std

__all__ = [
    "lltf_data_mask",
    "null_subcarrier_mask",
    "sanitize_phase",
    "normalize_amplitude",
    "remove_gain_steps",
    "subcarrier_sensitivity",
    "select_subcarriers",
    "csi_ratio",
]


def lltf_data_mask(subcarriers: np.ndarray, bandwidth_mhz: int = 20) -> np.ndarray:
    """Boolean mask of the used (data + pilot) subcarriers of an 802.11 legacy LTF.

    20 MHz legacy OFDM uses subcarriers ``±1 … ±26`` (52 of the 64 reported by an ESP32);
    index 0 (DC) and the guard bands ``-32 … -27`` and ``27 … 31`` carry no energy — on an
    ESP32 they read as zeros or as garbage. At 40 MHz the legacy LTF is duplicated in each
    20 MHz half, centred on ``±32``: used indices are ``6 ≤ |k| ≤ 58`` except ``|k| = 32``.

    Parameters
    ----------
    subcarriers : array_like of int
        Subcarrier indices (as in :attr:`Frames.subcarriers`).
    bandwidth_mhz : {20, 40}
        Channel bandwidth of the indices.

    Returns
    -------
    numpy.ndarray of bool
        Same length as ``subcarriers``.
    """
    k = np.abs(np.asarray(subcarriers, dtype=int))
    if bandwidth_mhz == 20:
        return (k >= 1) & (k <= 26)
    if bandwidth_mhz == 40:
        return (k >= 6) & (k <= 58) & (k != 32)
    raise ValueError(f"bandwidth_mhz must be 20 or 40, got {bandwidth_mhz}")


def null_subcarrier_mask(csi: np.ndarray, *, axis: int = 1, rel_threshold: float = 0.1) -> np.ndarray:
    """Data-driven mask of subcarriers that carry signal (for layouts with unknown nulls).

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI with time on axis 0 and subcarriers on ``axis``.
    axis : int
        Subcarrier axis.
    rel_threshold : float
        A subcarrier is kept when its median amplitude is at least this fraction of the
        median amplitude over all subcarriers.

    Returns
    -------
    numpy.ndarray of bool
        One entry per subcarrier; True = carries signal.
    """
    amp = np.abs(np.moveaxis(np.asarray(csi), axis, -1)).reshape(-1, np.shape(csi)[axis])
    med = np.median(amp, axis=0)
    ref = np.median(med)
    if not np.isfinite(ref) or ref <= 0:
        return np.zeros(len(med), dtype=bool)
    return med >= rel_threshold * ref


def _moved(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(x, axis, -1)


def sanitize_phase(
    csi: np.ndarray,
    subcarriers: np.ndarray | None = None,
    *,
    axis: int = 1,
    method: str = "conjugate",
) -> np.ndarray:
    """Remove the per-packet common phase (CFO) and linear phase slope (STO).

    Fits ``phase[k] ≈ a + b·k`` over subcarriers ``k`` for every packet and returns
    ``csi · exp(-j(a + b·k))``. What remains is the phase that varies across subcarriers in
    a non-linear way — the multipath structure, including the reflections off a person.

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI, any shape; subcarriers along ``axis``.
    subcarriers : array_like of int, optional
        Subcarrier index of each entry along ``axis`` (default ``0 … K-1``). Needed for a
        correct slope when indices are not consecutive (nulls removed, Intel 5300 groups).
    axis : int
        Subcarrier axis.
    method : {"conjugate", "lstsq"}
        ``"conjugate"`` (default, robust): slope from the amplitude-weighted mean of the
        conjugate products of neighbouring subcarriers ``H[k+1]·conj(H[k])`` — no phase
        unwrapping, so deep fades and noisy subcarriers cannot derail it; offset from the
        angle of the de-sloped sum. ``"lstsq"``: classic unwrap-and-least-squares fit
        (Sen et al., *Spot localization*, 2012), fragile when the slope is steep.

    Returns
    -------
    numpy.ndarray
        Complex, same shape and dtype as ``csi``.
    """
    h = _moved(np.asarray(csi), axis)
    n_sc = h.shape[-1]
    k = np.arange(n_sc, dtype=float) if subcarriers is None else np.asarray(subcarriers, float)
    if k.shape != (n_sc,):
        raise ValueError(f"subcarriers has {k.size} entries for {n_sc} subcarriers on axis {axis}")
    if n_sc < 2:
        ph = np.angle(h)
        return np.moveaxis((h * np.exp(-1j * ph)).astype(h.dtype, copy=False), -1, axis)
    if method == "conjugate":
        dk = np.diff(k)
        z = h[..., 1:] * np.conj(h[..., :-1])
        vals, counts = np.unique(dk, return_counts=True)
        step = vals[np.argmax(counts)]
        if counts.max() >= len(dk) // 2 and step != 0:
            # pairs at the usual spacing (skip e.g. the pair straddling DC)
            same = dk == step
            zs = z if same.all() else z[..., same]
            slope = np.angle(zs.sum(axis=-1)) / step
        else:  # bring every pair to a unit step before averaging
            zu = np.abs(z) * np.exp(1j * np.angle(z) / dk)
            slope = np.angle(zu.sum(axis=-1))
        ph = (slope[..., None] * k).astype(np.float32 if h.dtype == np.complex64 else float)
        derot = h * (np.cos(ph) - 1j * np.sin(ph))
        offset = np.angle(derot.sum(axis=-1))
        out = derot * np.exp(-1j * offset)[..., None].astype(derot.dtype)
    elif method == "lstsq":
        ph = np.unwrap(np.angle(h), axis=-1)
        kc = k - k.mean()
        slope = (ph * kc).sum(axis=-1) / (kc**2).sum()
        offset = ph.mean(axis=-1) - slope * k.mean()
        out = h * np.exp(-1j * (offset[..., None] + slope[..., None] * k))
    else:
        raise ValueError(f"method must be 'conjugate' or 'lstsq', got {method!r}")
    return np.moveaxis(out.astype(h.dtype, copy=False), -1, axis)


def normalize_amplitude(
    csi: np.ndarray, *, axis: int = 1, eps: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """Divide every packet by its RMS amplitude over subcarriers (removes AGC gain).

    AGC scales all subcarriers of a packet by the same factor, so the shape across
    subcarriers survives and the gain cancels.

    Parameters
    ----------
    csi : numpy.ndarray
        CSI (complex or amplitude), subcarriers along ``axis``.
    axis : int
        Subcarrier axis.
    eps : float
        Floor of the RMS (all-zero packets stay zero instead of becoming NaN).

    Returns
    -------
    normalised : numpy.ndarray
        Same shape as ``csi``; unit mean power over subcarriers.
    gain : numpy.ndarray
        The removed RMS amplitude per packet (``csi`` shape without ``axis``), in the
        input's units — keep it when the common amplitude carries signal (see
        :func:`remove_gain_steps`).
    """
    x = np.asarray(csi)
    gain = np.sqrt(np.mean(np.abs(x) ** 2, axis=axis))
    out = x / np.expand_dims(np.maximum(gain, eps), axis)
    return out, gain


def remove_gain_steps(
    gain_db: np.ndarray, *, axis: int = 0, n_sigmas: float = 6.0, min_step_db: float = 0.5
) -> np.ndarray:
    """Remove abrupt steps (AGC changes) from a gain series while keeping slow changes.

    Steps show up as outliers of the first difference; those differences are set to zero
    and the series is re-integrated. A breathing chest modulates the gain smoothly, so it
    survives; an AGC jump of a few dB between two packets does not.

    Parameters
    ----------
    gain_db : numpy.ndarray
        Gain in dB (e.g. ``20*log10(gain)`` from :func:`normalize_amplitude`), time along
        ``axis``.
    axis : int
        Time axis.
    n_sigmas : float
        A difference is a step when it exceeds ``n_sigmas`` robust standard deviations
        (1.4826 × median absolute deviation) of all differences …
    min_step_db : float
        … and is larger than this (dB), so tiny quantisation wiggles are never "steps".

    Returns
    -------
    numpy.ndarray
        Step-free gain (dB), same shape, starting at the input's first value.
    """
    g = np.moveaxis(np.asarray(gain_db, dtype=float), axis, 0)
    if g.shape[0] < 2:
        return np.moveaxis(g.copy(), 0, axis)
    d = np.diff(g, axis=0)
    med = np.median(d, axis=0)
    mad = robust_std(d, axis=0)
    step = (np.abs(d - med) > n_sigmas * mad) & (np.abs(d) > min_step_db)
    # a step between two samples of a binned series is split over two differences:
    # drop the neighbours of every detected step too
    step[1:] |= step[:-1].copy()
    step[:-1] |= step[1:].copy()
    d = np.where(step, 0.0, d)
    out = np.concatenate([g[:1], g[:1] + np.cumsum(d, axis=0)], axis=0)
    return np.moveaxis(out, 0, axis)


def subcarrier_sensitivity(
    x: np.ndarray, fs: float, band_hz: tuple[float, float] = (0.1, 0.67), *, axis: int = 0
) -> np.ndarray:
    """Per-channel sensitivity: in-band power over the mean power density outside it.

    Parameters
    ----------
    x : numpy.ndarray
        Uniformly sampled series (real or complex), time along ``axis``.
    fs : float
        Sample rate in Hz.
    band_hz : (float, float)
        Band of interest in Hz (default: breathing, 6–40 breaths/min).
    axis : int
        Time axis.

    Returns
    -------
    numpy.ndarray
        One score per channel (all other axes), dimensionless, larger = more sensitive.
    """
    xm = np.moveaxis(np.asarray(x), axis, 0)
    n = xm.shape[0]
    f, p = signal.welch(xm, fs=fs, axis=0, nperseg=min(n, 256), return_onesided=False,
                        detrend="linear")
    f = np.abs(f)
    inb = (f >= band_hz[0]) & (f <= band_hz[1])
    outb = f > min(2 * band_hz[1], fs / 2 * 0.9) * 0.999
    if not outb.any():
        outb = ~inb
    noise = p[outb].mean(axis=0)
    return p[inb].mean(axis=0) / np.maximum(noise, np.finfo(float).tiny)


def select_subcarriers(
    x: np.ndarray,
    fs: float,
    n: int,
    band_hz: tuple[float, float] = (0.1, 0.67),
    *,
    axis: int = 0,
    channel_axis: int = 1,
) -> np.ndarray:
    """Indices (along ``channel_axis``) of the ``n`` most sensitive channels, best first.

    Multipath makes some subcarriers nearly blind to a given movement; keeping the most
    sensitive ones (ranked by :func:`subcarrier_sensitivity`) improves SNR.
    """
    xm = np.moveaxis(np.asarray(x), (axis, channel_axis), (0, 1))
    score = subcarrier_sensitivity(xm.reshape(xm.shape[0], xm.shape[1], -1), fs, band_hz)
    score = score.max(axis=1) if score.ndim > 1 else score
    return np.argsort(score)[::-1][: int(n)]


def csi_ratio(
    csi: np.ndarray, *, rx_axis: int = 2, ref: int | None = None, eps: float = 1e-9
) -> np.ndarray:
    """CSI ratio between receive antennas (FarSense, Zeng et al., MobiCom 2019).

    Antennas of one NIC share the oscillator and the sampling clock, so CFO, STO and AGC
    multiply all of them alike and cancel in ``H_rx / H_ref``; the ratio also turns the
    tiny phase change of a chest reflection into a much larger, noise-free change.

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI, e.g. ``(n, n_subcarriers, n_rx, n_tx)``.
    rx_axis : int
        Receive-antenna axis (needs at least 2 antennas).
    ref : int, optional
        Reference antenna; default the one with the largest mean amplitude (a weak
        reference makes the ratio noisy).
    eps : float
        Regularisation: ``H·conj(R)/(|R|² + eps·mean|R|²)``.

    Returns
    -------
    numpy.ndarray
        Complex, the input shape with ``n_rx - 1`` entries along ``rx_axis`` (the
        reference removed).
    """
    h = np.asarray(csi)
    n_rx = h.shape[rx_axis]
    if n_rx < 2:
        raise ValueError(f"csi_ratio needs >= 2 receive antennas on axis {rx_axis}, got {n_rx}")
    if ref is None:
        other = tuple(i for i in range(h.ndim) if i != rx_axis % h.ndim)
        ref = int(np.argmax(np.mean(np.abs(h), axis=other)))
    r = np.take(h, [ref], axis=rx_axis)
    rest = np.delete(h, ref, axis=rx_axis)
    p = np.abs(r) ** 2
    reg = eps * np.mean(p) if np.mean(p) > 0 else eps
    return (rest * np.conj(r) / (p + reg)).astype(np.result_type(h.dtype, np.complex64))
