"""A LoRa receiver as a streaming stage: complex IQ chunks in, decoded frames out.

Steps (Tapparel et al., SPAWC 2020; Xhonneux et al., "A Low-complexity LoRa
Synchronization Algorithm Robust to Sampling Time Offsets", 2021):

1. **Front end.** The IQ (``os = fs / bw`` samples per chip, an integer) is averaged over
   each chip (a boxcar decimator: the noise bandwidth of an ideal ``bw`` filter, ~1 dB
   droop at the band edges) for detection and synchronisation only. Demodulation later
   resamples the raw samples of a found frame exactly (below).
2. **Preamble detection.** Consecutive windows of ``2**sf`` chips are dechirped with the
   base down-chirp and Fourier transformed; the powers of ``detect_windows`` consecutive
   windows (and of all channels) are added, and a window is a candidate when the peak of
   that sum exceeds ``detect_ratio`` × its mean (threshold from the chi-square tail of
   noise alone) and at least two of those windows peak within one bin of it.
3. **Coarse and fine synchronisation.** The windows are re-aligned on the preamble peak;
   the two sync-word chirps (``sync_word`` nibbles × 8) and the two full down-chirps are
   located; the up-chirp tone ``f_up = δ + cfo`` and the down-chirp tone
   ``f_down = −δ + cfo`` (integer bin from the FFT peak, fraction from the phase advance
   between consecutive chirps) give the carrier offset ``cfo = (f_up + f_down)/2`` (to
   ±bw/4) and the timing ``δ = (f_up − f_down)/2`` to a small fraction of a chip.
4. **Demodulation.** Blocks of symbols are cut from the raw samples, the carrier offset
   removed, and resampled to exactly one sample per chip at the estimated chip times by an
   FFT (ideal ``bw`` low-pass, fractional delay as a phase slope). The sampling clock
   offset (SCO) follows from the carrier offset when the centre frequency is known
   (one crystal: ``sco = cfo / f_c``), and is re-estimated from the drift of the symbols'
   fractional peak positions when a frame fails its CRC. Each symbol: dechirp, FFT,
   strongest bin (powers of all channels added); the complex value of that bin per channel
   is the chirp's complex amplitude (:attr:`LoraFrame.amplitudes`).
5. **Decoding** (:mod:`sensing.lora.modem`): Gray mapping, deinterleaving, Hamming
   decoding, dewhitening, explicit header with its checksum, payload CRC-16.

Memory stays bounded: the raw samples kept are those of the preamble search window and of
the frame being received (at most one frame of 255 bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sensing.frames import Frames
from sensing.lora import modem
from sensing.lora.params import LoraParams, lora_from_meta
from sensing.params import Params, param

__all__ = ["ReceiverParams", "LoraReceiver", "LoraFrame", "shared_receiver", "receive_iq"]


class ReceiverParams(Params):
    """Options of :class:`LoraReceiver` (the LoRa parameters come from the stream's
    ``meta["lora"]`` unless given here)."""

    sf: int | None = param(None, ge=7, le=12, doc="spreading factor (default: the stream's)")
    bw_hz: Literal[125000, 250000, 500000] | None = param(
        None, unit="Hz", doc="LoRa bandwidth (default: the stream's)")
    sync_word: int | None = param(None, ge=0, le=255, doc="sync word (default: the stream's, "
                                                         "else 0x12)")
    preamble_len: int | None = param(None, ge=6, le=65535,
                                     doc="preamble up-chirps (default: the stream's, else 8)")
    detect_windows: int = param(4, ge=2, le=8,
                                doc="consecutive preamble windows whose powers are added "
                                    "for detection")
    false_alarm: float = param(1e-4, gt=0, lt=1,
                               doc="probability that noise alone passes the detection "
                                   "threshold in one window")
    center_hz: float | None = param(None, unit="Hz",
                                    doc="carrier frequency for the clock offset from the "
                                        "carrier offset (default: the stream's)")
    sco_from_cfo: bool = param(True, doc="assume one crystal in the transmitter: sampling "
                                         "clock offset = carrier offset / carrier frequency")
    channel: int | None = param(None, ge=0, doc="decode this channel only (default: all "
                                               "channels combined)")


@dataclass
class LoraFrame:
    """One received LoRa frame (header decoded).

    Attributes
    ----------
    start_s : float
        Start of the preamble, seconds from the start of the stream.
    end_s : float
        End of the last symbol, s.
    payload : bytes
        Decoded payload (wrong when ``crc_ok`` is False).
    crc_ok : bool or None
        Payload CRC valid (None: the frame has no CRC).
    sf, cr, bw_hz : int
        Spreading factor, coding rate (4/(4+cr)), bandwidth in Hz.
    has_crc : bool
        The header announces a CRC.
    snr_db : float
        In-band SNR (signal power over noise power in ``bw``), dB, from the symbols' FFT
        peaks.
    rssi_db : float
        Mean power of the frame's samples (signal and noise) in dB full scale (dBFS; add
        the receiver's gain calibration for dBm).
    cfo_hz : float
        Carrier frequency offset, Hz (transmitter minus receiver).
    sco_ppm : float
        Sampling clock offset used, parts per million.
    timing_chips : float
        Fractional part of the frame's start in chips (diagnostic).
    symbols : numpy.ndarray
        int64 (n,): received symbol values (header block first).
    amplitudes : numpy.ndarray
        complex64 (n, n_channels): complex amplitude of each symbol's chirp per channel
        (the dechirped FFT bin of the symbol divided by 2**sf; carrier offset removed).
    preamble_amplitudes : numpy.ndarray
        complex64 (preamble_len − 1, n_channels): the same for the preamble up-chirps
        (all but the first), the known chirps to use for sensing.
    chirp_times_s : numpy.ndarray
        float64 (n,): start time of each symbol, s.
    preamble_times_s : numpy.ndarray
        float64 (preamble_len − 1,): start time of the preamble chirps in
        ``preamble_amplitudes``, s.
    corrected : int
        Codewords that did not match a valid codeword (errors seen by the Hamming code).
    """

    start_s: float
    end_s: float
    payload: bytes
    crc_ok: bool | None
    sf: int
    cr: int
    bw_hz: int
    has_crc: bool
    snr_db: float
    rssi_db: float
    cfo_hz: float
    sco_ppm: float
    timing_chips: float
    symbols: np.ndarray
    amplitudes: np.ndarray
    preamble_amplitudes: np.ndarray
    chirp_times_s: np.ndarray
    preamble_times_s: np.ndarray
    corrected: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _power(f: np.ndarray) -> np.ndarray:
    """|f|² summed over the last (channel) axis (fast for a few channels)."""
    p = f.real ** 2 + f.imag ** 2
    out = p[..., 0].copy()
    for c in range(1, p.shape[-1]):
        out += p[..., c]
    return out


def _fft() -> Any:
    """scipy.fft (single precision for complex64, unlike numpy.fft), imported on use."""
    import scipy.fft

    return scipy.fft


def _gamma_isf(p: float, k: int) -> float:
    """x with P(Gamma(k, 1) > x) = p (inverse survival function)."""
    from scipy.special import gammainccinv

    return float(gammainccinv(k, p))


def _wrap(x: np.ndarray | float, period: float) -> Any:
    """x wrapped to [-period/2, period/2)."""
    return (np.asarray(x) + period / 2) % period - period / 2


def _jacobsen(f: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Fractional peak offset of complex spectra ``f`` (rows, N) at integer bins ``k``
    (Jacobsen's estimator; the bins' powers of all channels are combined when ``f`` has a
    trailing channel axis)."""
    n = f.shape[1]
    rows = np.arange(len(k))
    a, b, c = f[rows, (k - 1) % n], f[rows, k], f[rows, (k + 1) % n]
    num, den = a - c, 2 * b - a - c
    if f.ndim == 3:  # channels: combine with b's phase as reference
        r = (num * np.conj(den)).sum(axis=-1)
        d = (np.abs(den) ** 2).sum(axis=-1)
    else:
        r, d = num * np.conj(den), np.abs(den) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.real(r) / np.where(d > 0, d, 1.0)
    return np.clip(np.nan_to_num(out), -0.5, 0.5)


class _Grow:
    """A growable (n, C) complex64 buffer: amortised appends, drops from the front."""

    def __init__(self, n_ch: int) -> None:
        self.arr = np.zeros((1 << 12, n_ch), np.complex64)
        self.lo = self.hi = 0

    @property
    def view(self) -> np.ndarray:
        return self.arr[self.lo: self.hi]

    def append(self, x: np.ndarray) -> None:
        n = len(x)
        if self.hi + n > len(self.arr):
            live = self.hi - self.lo
            if live + n > len(self.arr) // 2:  # grow
                cap = len(self.arr)
                while live + n > cap // 2:
                    cap *= 2
                new = np.zeros((cap, self.arr.shape[1]), np.complex64)
            else:
                new = self.arr
            new[:live] = self.arr[self.lo: self.hi]
            self.arr, self.lo, self.hi = new, 0, live
        self.arr[self.hi: self.hi + n] = x
        self.hi += n

    def drop(self, n: int) -> None:
        self.lo = min(self.lo + max(n, 0), self.hi)


class LoraReceiver:
    """Streaming LoRa receiver (a :class:`sensing.stage.Stage` of :class:`LoraFrame`).

    Parameters
    ----------
    params : ReceiverParams, optional
        Options; keyword arguments override them.
    lora : LoraParams, optional
        Radio parameters; default: from the first chunk's ``meta["lora"]`` (then
        :class:`ReceiverParams` fields given override its fields).
    """

    Params = ReceiverParams

    def __init__(self, params: ReceiverParams | None = None, /, *,
                 lora: LoraParams | None = None, **options: Any) -> None:
        self.params = ReceiverParams.build(params, options, where="lora receiver")
        self._lora_given = lora
        self.lora: LoraParams | None = None
        self.problem: str | None = None
        self.frames_found = 0
        self.candidates = 0
        self._flushed: list[LoraFrame] | None = None
        self._ready = False

    # ------------------------------------------------------------------ set-up
    def _setup(self, frames: Frames) -> bool:
        meta = frames.meta or {}
        lora = self._lora_given or lora_from_meta(meta.get("lora")) or None
        p = self.params
        over = {k: getattr(p, k) for k in ("sf", "bw_hz", "sync_word", "preamble_len")
                if getattr(p, k) is not None}
        if lora is None and "sf" not in over:
            self.problem = "no LoRa parameters (sf, bw_hz) in the recording or options"
            return False
        lora = (lora or LoraParams()).replace(**over) if over else lora
        self.lora = lora
        fs = frames.fs_hz
        if not fs:
            self.problem = "the stream has no sample rate"
            return False
        ratio = fs / lora.bw_hz
        os_ = int(round(ratio))
        if os_ < 1 or abs(ratio - os_) > 1e-6:
            self.problem = (f"sample rate {fs:g} Hz is not a whole multiple of the LoRa "
                            f"bandwidth {lora.bw_hz} Hz")
            return False
        self.fs = float(fs)
        self.os = os_
        self.n = lora.n_chips
        self.n_ch = frames.data.shape[1] if frames.data.ndim == 2 else 1
        ch = p.channel if p.channel is not None else lora.channel
        self.use_ch = (slice(None) if ch is None or ch >= self.n_ch
                       else slice(ch, ch + 1))
        self.center_hz = p.center_hz if p.center_hz is not None else meta.get("center_hz")
        self.t_base = float(frames.times_s[0]) if len(frames.times_s) else 0.0
        self.up = modem.chirp(lora.sf)
        self.down = np.conj(self.up)
        self.sync = modem.sync_symbols(lora.sync_word)
        n_c = len(range(self.n_ch)[self.use_ch])
        m = p.detect_windows
        self.k_det = m * n_c
        self.thr = _gamma_isf(p.false_alarm / self.n, self.k_det) / self.k_det
        # four windows (two sync words, two down-chirps), each in units of its mean power
        self.thr_struct = _gamma_isf(1e-3 / self.n, 4 * n_c) / n_c
        self.keep_chips = (lora.preamble_len + 10) * self.n
        # buffers: raw samples and their chip-rate boxcar average
        self._raw = _Grow(self.n_ch)
        self.raw0 = 0          # absolute raw index of raw[0]
        self._chips = _Grow(n_c)
        self.chip0 = 0         # absolute chip index of chips[0]
        self.scan = 0          # absolute chip index of the next detection window
        self.prev_pow: list[np.ndarray] = []
        self.pending: dict[str, Any] | None = None
        self._ready = True
        return True

    @property
    def raw(self) -> np.ndarray:
        """The raw samples kept (n, channels), from absolute index ``raw0``."""
        return self._raw.view

    @property
    def chips(self) -> np.ndarray:
        """The chip averages kept (n, decoded channels), from absolute chip ``chip0``."""
        return self._chips.view

    # ------------------------------------------------------------------ stage
    def push(self, frames: Frames) -> list[LoraFrame]:
        """Consume a chunk of IQ; return the frames it completed."""
        if not len(frames):
            return []
        if not self._ready:
            if self.problem is not None or not self._setup(frames):
                return []
        data = frames.data if frames.data.ndim == 2 else frames.data[:, None]
        data = np.asarray(data, np.complex64)
        self._raw.append(data)
        self._decimate()
        out: list[LoraFrame] = []
        self._process(out)
        self._trim()
        return out

    def flush(self) -> list[LoraFrame]:
        """End of stream (idempotent: a second call returns the same frames)."""
        if self._flushed is not None:
            return self._flushed
        out: list[LoraFrame] = []
        if self._ready:
            self._process(out, final=True)
        self._flushed = out
        return out

    # ------------------------------------------------------------------ front end
    def _decimate(self) -> None:
        """Extend the chip-rate buffer with the boxcar average of the new raw chips."""
        os_ = self.os
        done = self.chip0 + len(self.chips)  # next chip to make
        start = done * os_ - self.raw0
        avail = (len(self.raw) - start) // os_
        if avail <= 0:
            return
        seg = self.raw[start: start + avail * os_, self.use_ch]
        if os_ > 1:
            acc = seg[0::os_].copy()
            for j in range(1, os_):
                acc += seg[j::os_]
            acc *= np.float32(1.0 / os_)
            seg = acc
        seg = seg.astype(np.complex64, copy=False)
        self._chips.append(seg)

    def _chip_windows(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), N, C) chip windows at integer absolute chip positions (all
        inside the buffer)."""
        idx = (np.asarray(starts, np.int64) - self.chip0)[:, None] + np.arange(self.n)
        return self.chips[idx]

    def _trim(self) -> None:
        keep_from = self.scan - self.keep_chips
        if self.pending is not None:
            keep_from = min(keep_from, int(self.pending["hold"]))
        drop = keep_from - self.chip0
        if drop > 0:
            self._chips.drop(drop)
            self.chip0 += drop
        drop_raw = max(keep_from, 0) * self.os - self.raw0 - 4 * self.os
        if drop_raw > 0:
            self._raw.drop(drop_raw)
            self.raw0 += drop_raw

    # ------------------------------------------------------------------ main loop
    def _process(self, out: list[LoraFrame], final: bool = False) -> None:
        n = self.n
        while True:
            if self.pending is not None:
                state = self._continue(self.pending, final)
                if state == "wait":
                    return
                self.pending = None
                if isinstance(state, LoraFrame):
                    out.append(state)
                continue
            end = self.chip0 + len(self.chips)
            n_win = (end - self.scan) // n
            half = self.os % 2 == 0
            if half:  # the half-chip grid needs os/2 more raw samples
                n_win = min(n_win, (self._raw_end() - self.os // 2 - self.scan * self.os)
                            // (n * self.os))
            if n_win <= 0:
                return
            starts = self.scan + n * np.arange(n_win)
            i0 = self.scan - self.chip0
            grids = [self.chips[i0: i0 + n_win * n].reshape(n_win, n, -1)]
            if half:
                # chip averages half a chip later: a chirp whose fold falls mid-window
                # loses up to all its power at half a chip off the chip grid
                r = self.scan * self.os + self.os // 2 - self.raw0
                seg = self.raw[r: r + n_win * n * self.os, self.use_ch]
                acc = seg[0::self.os].copy()
                for j in range(1, self.os):
                    acc += seg[j::self.os]
                grids.append((acc * np.float32(1.0 / self.os)).reshape(n_win, n, -1))
            m = self.params.detect_windows
            hit = None
            carry = []
            for g, win in enumerate(grids):
                f = _fft().fft(win * self.down[None, :, None], axis=1, overwrite_x=True)
                pw = _power(f)  # (n_win, N)
                prev = (self.prev_pow[g] if g < len(self.prev_pow)
                        else np.zeros((0, n), np.float32))
                allp = np.concatenate([prev, pw]) if len(prev) else pw
                carry.append(allp[-(m - 1):] if m > 1 else allp[:0])
                found = self._detect(allp, len(prev), m)
                if found is not None and (hit is None or found[0] < hit[0]):
                    hit = found
            if hit is None:
                self.scan = int(starts[-1] + n)
                self.prev_pow = carry
                return
            last, k = hit
            self.candidates += 1
            p_w = int(starts[last])
            self.pending = {"stage": "sync", "p_w": p_w, "k": k,
                            "hold": p_w - self.keep_chips}
            self.prev_pow = []

    def _detect(self, allp: np.ndarray, n_prev: int, m: int) -> tuple[int, int] | None:
        """First window (index in the batch, peak bin) whose ``m``-window power sum passes
        the detection test, or None."""
        n = self.n
        if len(allp) < m:
            return None
        s = allp[: len(allp) - m + 1].copy()  # s[i] = sum of allp[i : i+m]
        for j in range(1, m):
            s += allp[j: len(allp) - m + 1 + j]
        peak = s.argmax(axis=1)
        ratio = s[np.arange(len(s)), peak] / np.maximum(s.mean(axis=1), 1e-30)
        tops = allp.argmax(axis=1)
        for i in np.flatnonzero(ratio > self.thr):
            d = _wrap(tops[i: i + m] - peak[i], n)
            if (np.abs(d) <= 1).sum() >= 2:
                last = i + m - 1 - n_prev  # index in this batch of the last window
                if last >= 0:
                    return last, int(peak[i])
        return None

    def _give_up(self, p_w: int) -> str:
        self.scan = p_w + self.n
        return "fail"

    def _continue(self, st: dict[str, Any], final: bool) -> Any:
        if st["stage"] == "sync":
            return self._sync(st, final)
        return self._demod_frame(st, final)

    # ------------------------------------------------------------------ sync
    def _sync(self, st: dict[str, Any], final: bool) -> Any:
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        k = int(_wrap(st["k"], n))
        q0 = float(st["p_w"] - k)
        js = np.arange(-pre, pre + 5)
        first = max(q0 - pre * n, float(self.chip0))
        js = js[q0 + js * n >= first - 1e-9]
        last_raw = (q0 + (js[-1] + 1) * n + 1) * self.os + 16 * self.os
        if last_raw > self._raw_end():
            return self._give_up(st["p_w"]) if final else "wait"
        # pass 1: on the chip grid and half a chip later (the fold of a chirp costs up to
        # 6 dB at half a chip off); keep the better
        found = None
        for shift in (0.0, 0.5):
            got = self._sync_windows(q0 + shift, js, z=self._boxcar(q0 + shift, js))
            if got is not None and (found is None or got["score"] > found["score"]):
                found = got
        if found is None:
            return self._give_up(st["p_w"])
        # pass 2: windows aligned on the estimated symbol starts, estimates again
        q1 = found["q_d"] - found["delta"]
        js2 = np.arange(-(pre + 2), 2)  # preamble … second down-chirp, relative to i_d
        fine = self._sync_windows(q1, js2, i_d=pre + 2, drift=found["drift"])
        if fine is not None:
            found = fine
        cfo, delta, sco = found["cfo"], found["delta"], found["sco"]
        cfo_hz = cfo * lora.bw_hz / n
        # preamble start, chips (real): the first down-chirp began delta before its window
        sigma = found["q_d"] - delta - (pre + 2) * n * (1.0 - sco)
        st.update({"stage": "header", "sigma": sigma, "cfo": cfo, "cfo_hz": cfo_hz,
                   "sco": sco, "sco_guess": found["drift"] / n, "gap": found["gap"],
                   "hold": int(math.floor(sigma)) - 2 * n})
        return self._demod_frame(st, final)

    def _boxcar(self, q: float, js: np.ndarray) -> np.ndarray | None:
        """Chip averages (len(js)·N, C) of the raw samples from chip ``q + js[0]·N`` when
        that is on the chip grid or half a chip off it (even ``os``); else None (then
        :meth:`_sync_windows` resamples)."""
        n, os_ = self.n, self.os
        start = q + js[0] * n
        count = len(js) * n
        if float(start).is_integer():
            i = int(start) - self.chip0
            if i >= 0 and i + count <= len(self.chips):
                return self.chips[i: i + count]
            return None
        if os_ % 2 or (2 * start) % 1:
            return None
        r = int(round(start * os_)) - self.raw0
        if r < 0 or r + count * os_ > len(self.raw):
            return None
        seg = self.raw[r: r + count * os_, self.use_ch]
        acc = seg[0::os_].copy()
        for j in range(1, os_):
            acc += seg[j::os_]
        return acc * np.float32(1.0 / os_)

    def _sync_windows(self, q: float, js: np.ndarray, i_d: int | None = None,
                      z: np.ndarray | None = None, drift: float | None = None
                      ) -> dict[str, Any] | None:
        """Locate the sync word and down-chirps in windows starting at chips ``q + j·N``
        (``js``; resampled from the raw samples) and estimate the offsets; None when the
        frame structure is not there. ``i_d``: the index in ``js`` of the first
        down-chirp when known."""
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        if z is None:
            base = q + js[0] * n
            z = self._resample(base * self.os + (self.os - 1) / 2.0, len(js) * n)
        w = z.reshape(len(js), n, -1)
        fu = _fft().fft(w * self.down[None, :, None], axis=1)  # (J, N, C)
        fd = _fft().fft(w * self.up[None, :, None], axis=1)
        pu = _power(fu)
        pd = _power(fd)
        if i_d is None:
            # the frame structure at i: sync words at i-2, i-1 (their bins ±1), down-chirps
            # at i, i+1 (a common bin); each window's power in units of its mean
            s1, s2 = self.sync
            nu = pu / np.maximum(pu.mean(axis=1, keepdims=True), 1e-30)
            nd = pd / np.maximum(pd.mean(axis=1, keepdims=True), 1e-30)
            pair = (nd[:-1] + nd[1:]).max(axis=1)
            near1 = nu[:, (s1 + np.arange(-1, 2)) % n].max(axis=1)
            near2 = nu[:, (s2 + np.arange(-1, 2)) % n].max(axis=1)
            cand = np.flatnonzero((np.arange(len(js) - 1) >= 2) & (js[:-1] >= -1))
            if not len(cand):
                return None
            total = pair[cand] + near1[cand - 2] + near2[cand - 1]
            i_d = int(cand[total.argmax()])
            if float(total.max()) < self.thr_struct:
                return None
            got1, got2 = int(pu[i_d - 2].argmax()), int(pu[i_d - 1].argmax())
            if not (abs(_wrap(got1 - s1, n)) <= 1 or abs(_wrap(got2 - s2, n)) <= 1):
                return None
            score = float(total.max())
        else:
            score = 0.0
        # up tone from the preamble windows (all but the first, and not the sync words)
        up_idx = np.arange(max(0, i_d - pre), i_d - 2)
        if len(up_idx) < 2 or i_d + 2 > len(js):
            return None
        i_up, a_up, _ = self._tone(fu[up_idx], pu[up_idx])
        i_dn, a_dn, _ = self._tone(fd[i_d: i_d + 2], pd[i_d: i_d + 2])
        # in-window tones: f_up = delta + cfo, f_down = -delta + cfo (mod N); the phase
        # advance between windows gives the fraction of the cfo (the chirps repeat).
        # A clock offset p makes delta grow by N p per window: f_up is the tone at the
        # middle of the preamble windows, f_down at window i_d.
        i_dn = float(_wrap(i_dn - i_up, n)) + i_up
        kk = int(pu[up_idx].sum(axis=0).argmax())
        per = np.array(_jacobsen(fu[up_idx], np.full(len(up_idx), kk)))
        if drift is not None:  # given (from the coarse pass, whose windows straddle
            per = per[:0]      # the chirps' starts: a less biased slope)
        else:
            drift = 0.0
        if len(per) >= 4:  # kept when clearly above its standard error
            x = np.arange(len(per)) - (len(per) - 1) / 2
            slope = float((x * per).sum() / (x * x).sum())
            res = per - per.mean() - slope * x
            se = math.sqrt(float((res * res).sum()) / (len(per) - 2) / float((x * x).sum()))
            if abs(slope) > 4 * se:
                drift = slope
        gap = i_d - float(np.mean(up_idx))  # windows from the preamble middle to i_d
        frac = float(np.angle(a_up + a_dn)) / (2 * np.pi)
        sco = 0.0
        cfo = 0.0
        for _ in range(2):  # the clock offset follows from the carrier offset
            coarse = float(_wrap((i_up + i_dn - n * sco * gap) / 2, n / 2))
            cfo = coarse + float(_wrap(frac - coarse, 1.0))
            if self.params.sco_from_cfo and self.center_hz:
                sco = cfo * lora.bw_hz / n / float(self.center_hz)
            else:
                sco = drift / n
        delta = float(_wrap(i_up - cfo + n * sco * gap, n))  # at window i_d
        return {"q_d": q + js[i_d] * n, "delta": delta, "cfo": cfo, "sco": sco,
                "drift": drift, "gap": gap, "score": score + float(pu[up_idx].max())
                / max(float(pu[up_idx].mean()), 1e-30)}

    @staticmethod
    def _tone(f: np.ndarray, p: np.ndarray) -> tuple[float, complex, int]:
        """A tone seen in consecutive windows ``f`` (J, N, C): its in-window frequency in
        bins (real; peak of the coherent sum, Jacobsen interpolation), the summed phase
        advance between consecutive windows (complex; its angle / 2π is the fractional
        carrier offset) and J."""
        n_win, n = f.shape[0], f.shape[1]
        k = int(p.sum(axis=0).argmax())
        adv = complex((f[1:, k] * np.conj(f[:-1, k])).sum()) if n_win > 1 else 0j
        rot = np.exp(-1j * np.angle(adv) * np.arange(n_win)) if n_win > 1 else np.ones(1)
        near = (k + np.arange(-2, 3)) % n
        tot = np.einsum("j,jkc->kc", rot, f[:, near])  # coherent sum at k-2 … k+2
        m = int((np.abs(tot[1:4]) ** 2).sum(axis=-1).argmax()) + 1  # k-1, k or k+1
        trip = tot[m - 1: m + 2][None]  # (1, 3, C)
        interp = k + (m - 2) + float(_jacobsen(trip, np.array([1]))[0])
        return interp, adv, n_win

    # ------------------------------------------------------------------ demodulation
    def _sym_starts(self, st: dict[str, Any], idx: np.ndarray) -> np.ndarray:
        """Raw-sample start of data symbols ``idx`` (negative: before the data, e.g. the
        preamble chirps at −(P+4.25) … ), real."""
        n, pre = self.n, self.lora.preamble_len
        chips = st["sigma"] + (pre + 4.25 + idx) * n * (1.0 - st["sco"])
        return chips * self.os + (self.os - 1) / 2.0

    def _raw_end(self) -> int:
        return self.raw0 + len(self.raw)

    def _resample(self, base: float, n_out: int, cfo_hz: float = 0.0) -> np.ndarray:
        """``n_out`` chip-rate samples (n_out, C) at raw times ``base + os·j`` (real raw
        sample index), the carrier offset removed: an FFT of the raw samples around them,
        cut to the LoRa band (ideal low-pass) with the fractional delay as a phase slope.
        Samples outside the buffer count as zeros."""
        os_, margin = self.os, 16
        from scipy.fft import next_fast_len

        lc = next_fast_len(n_out + 2 * margin)
        while lc % 2:
            lc = next_fast_len(lc + 1)
        s0 = int(math.floor(base)) - margin * os_
        frac = base - math.floor(base)
        i0 = s0 - self.raw0
        seg = self.raw[max(i0, 0): max(i0 + lc * os_, 0), self.use_ch]
        if i0 < 0 or len(seg) < lc * os_:  # pad at the edges of the buffer
            full = np.zeros((lc * os_, self.raw.shape[1] if self.use_ch == slice(None)
                             else 1), np.complex64)
            off = max(-i0, 0)
            full[off: off + len(seg)] = seg
            seg = full
        big = lc * os_
        spec = _fft().fft(seg, axis=0)
        # the carrier offset: a whole number m of bins moves the band, the rest is
        # removed at the chip rate
        m = int(round(cfo_hz * big / self.fs))
        h = lc // 2
        sel = (np.concatenate([np.arange(h), np.arange(big - h, big)]) + m) % big
        spec = spec[sel]
        kf = np.fft.fftfreq(lc, 1.0 / lc)
        spec *= np.exp(2j * np.pi * kf * (frac / os_) / lc)[:, None]
        z = _fft().ifft(spec, axis=0)[margin: margin + n_out] / os_
        # z[j] is at raw time s0 + frac + os (margin + j); the band moved by m bins
        t = (s0 + frac + os_ * (margin + np.arange(n_out))) / self.fs
        res = cfo_hz - m * self.fs / big
        phase = -2 * np.pi * (res * t + m * self.fs / big * (s0 / self.fs))
        if m or res:
            z = z * np.exp(1j * phase)[:, None]
        return z.astype(np.complex64)

    def _spectra(self, st: dict[str, Any], idx: np.ndarray) -> np.ndarray:
        """Dechirped spectra (len(idx), N, C) of symbols ``idx`` resampled from the raw
        samples at the estimated chip times (raw samples must be available)."""
        n, os_ = self.n, self.os
        sco = abs(st["sco"])
        block = int(max(1, min(32, 0.05 / max(sco * n, 1e-12))))
        out = np.empty((len(idx), n, len(range(self.n_ch)[self.use_ch])), np.complex64)
        for b0 in range(0, len(idx), block):
            sel = idx[b0: b0 + block]
            r = self._sym_starts(st, sel)
            offs = np.rint((r - r[0]) / os_).astype(np.int64)
            z = self._resample(r[0], int(offs[-1]) + n, st["cfo_hz"])
            win = z[offs[:, None] + np.arange(n)]  # (nb, N, C)
            out[b0: b0 + len(sel)] = _fft().fft(win * self.down[None, :, None], axis=1)
        return out

    def _demod(self, st: dict[str, Any], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spec = self._spectra(st, idx)
        pw = _power(spec)
        return spec, pw

    def _demod_frame(self, st: dict[str, Any], final: bool) -> Any:
        n, lora = self.n, self.lora
        need = self._sym_starts(st, np.array([8.0]))[0] + 64 * self.os
        if need > self._raw_end():
            return self._fail_frame(st) if final else "wait"
        if st["stage"] == "header":
            spec, pw = self._demod(st, np.arange(8))
            syms = pw.argmax(axis=1)
            if lora.implicit_header:
                length, cr, has_crc = lora.payload_len, lora.cr, lora.has_crc
            else:
                length, cr, has_crc, ok, _ = modem.decode_header(syms, lora.sf)
                if not ok:
                    fixed = self._chase_header(pw)
                    if fixed is not None:
                        (length, cr, has_crc, ok, _), st["hdr_syms"] = fixed
                if not ok and st["sco"] == 0.0 and abs(st.get("sco_guess", 0.0)) > 2e-6:
                    # clock offset unknown: try the preamble's own drift
                    trial = dict(st, sco=st["sco_guess"],
                                 sigma=st["sigma"] + n * st["sco_guess"]
                                 * (lora.preamble_len + 2 - st["gap"]))
                    _, pw2 = self._demod(trial, np.arange(8))
                    got = modem.decode_header(pw2.argmax(axis=1), lora.sf)
                    if got[3]:
                        st = trial
                        self.pending = st
                        length, cr, has_crc, ok, _ = got
                if not ok:
                    return self._fail_frame(st)
            ldro = lora.ldro_on
            n_sym = modem.n_payload_symbols(length, lora.sf, cr, has_crc=has_crc,
                                            implicit_header=lora.implicit_header, ldro=ldro)
            st.update({"stage": "payload", "length": length, "cr": cr, "has_crc": has_crc,
                       "ldro": ldro, "n_sym": n_sym})
        n_sym = st["n_sym"]
        need = self._sym_starts(st, np.array([float(n_sym)]))[0] + 64 * self.os
        if need > self._raw_end():
            return self._fail_frame(st) if final else "wait"
        idx = np.arange(n_sym)
        spec, pw = self._demod(st, idx)
        dec, syms = self._decode(st, pw)
        if dec is not None and dec.crc_ok is False:
            # re-estimate the clock offset from the drift of the fractional peaks
            for _ in range(2):
                k = pw.argmax(axis=1)
                eps = np.unwrap(2 * np.pi * _jacobsen(spec, k)) / (2 * np.pi)
                if len(eps) < 8:
                    break
                slope = float(np.polyfit(idx, eps, 1)[0])
                if abs(slope * n_sym) < 0.1:
                    break
                d_sco = slope / n
                trial = dict(st, sco=st["sco"] + d_sco,
                             sigma=st["sigma"] + n * d_sco
                             * (lora.preamble_len + 2 - st.get("gap", 0.0)))
                spec2, pw2 = self._demod(trial, idx)
                dec2, syms2 = self._decode(trial, pw2)
                if dec2 is None:
                    break
                st, spec, pw, dec, syms = trial, spec2, pw2, dec2, syms2
                if dec.crc_ok:
                    break
        if dec is not None and dec.crc_ok is False:
            better = self._chase(st, pw, syms)
            if better is not None:
                dec, syms = better
        if dec is None:
            return self._fail_frame(st)
        return self._finish(st, spec, pw, syms, dec)

    def _decode(self, st: dict[str, Any], pw: np.ndarray):
        lora = self.lora
        syms = pw.argmax(axis=1)
        if "hdr_syms" in st:  # a header block fixed by the soft retry
            syms[:8] = st["hdr_syms"]
        dec = modem.decode_symbols(syms, lora.sf, implicit_header=lora.implicit_header,
                                   payload_len=st["length"], cr=st["cr"],
                                   has_crc=st["has_crc"], ldro=st["ldro"])
        return dec, syms

    def _chase(self, st: dict[str, Any], pw: np.ndarray, syms: np.ndarray,
               max_trials: int = 256) -> tuple[modem.Decoded, np.ndarray] | None:
        """Soft-decision retry of a frame whose CRC failed (a Chase decoder on symbols):
        in each payload block whose codewords are not all valid, the least costly
        replacements of one symbol by its 2nd or 3rd strongest bin that make every
        codeword of the block valid are candidates; combinations across blocks are tried
        cheapest first (cost: the power given up) until the CRC holds."""
        import itertools

        lora = self.lora
        sf, cr, ldro = lora.sf, st["cr"], st["ldro"]
        sf_pay = sf - 2 if ldro else sf
        cw_len = 4 + cr
        n_blocks = (st["n_sym"] - 8) // cw_len
        if n_blocks < 1:
            return None
        rows = np.arange(len(pw))
        order = np.argsort(pw, axis=1)[:, ::-1][:, :3]
        p_top = pw[rows[:, None], order]

        def weight(vals: np.ndarray) -> int:
            bits = modem.deinterleave(modem._values(vals, sf, sf_pay), sf_pay)
            return int(modem.hamming_decode(bits, cr)[1].sum())

        per_block: list[list[tuple[float, int, np.ndarray]]] = []
        for b in range(n_blocks):
            idx = 8 + b * cw_len + np.arange(cw_len)
            base = syms[idx]
            opts: list[tuple[float, int, np.ndarray]] = [(0.0, b, base)]
            if weight(base) > 0:
                for j in range(cw_len):
                    for a in (1, 2):
                        cand = base.copy()
                        cand[j] = order[idx[j], a]
                        if weight(cand) == 0:
                            cost = float(p_top[idx[j], 0] - p_top[idx[j], a])
                            opts.append((cost, b, cand))
                if len(opts) == 1:  # no single replacement: try two symbols
                    for j1, j2 in itertools.combinations(range(cw_len), 2):
                        for a1, a2 in itertools.product((1, 2), repeat=2):
                            cand = base.copy()
                            cand[j1], cand[j2] = order[idx[j1], a1], order[idx[j2], a2]
                            if weight(cand) == 0:
                                cost = float(p_top[idx[j1], 0] - p_top[idx[j1], a1]
                                             + p_top[idx[j2], 0] - p_top[idx[j2], a2])
                                opts.append((cost, b, cand))
                if len(opts) > 1:  # the block as received is wrong: drop it
                    opts = sorted(opts[1:], key=lambda o: o[0])[:6]
            per_block.append(opts)
        suspects = [o for o in per_block if len(o) > 1 or o[0][0] > 0]
        if not suspects:
            return None
        while math.prod(len(o) for o in suspects) > 4096:  # bound the search
            longest = max(suspects, key=len)
            longest.pop()
        combos = sorted(itertools.product(*suspects), key=lambda c: sum(o[0] for o in c))
        for combo in combos[:max_trials]:
            trial = syms.copy()
            for _, b, vals in combo:
                trial[8 + b * cw_len: 8 + (b + 1) * cw_len] = vals
            dec = modem.decode_symbols(trial, sf, implicit_header=lora.implicit_header,
                                       payload_len=st["length"], cr=cr,
                                       has_crc=st["has_crc"], ldro=ldro)
            if dec is not None and dec.crc_ok:
                return dec, trial
        return None

    def _chase_header(self, pw: np.ndarray) -> tuple | None:
        """Soft retry of a header block whose checksum failed: replacements of one or two
        of its 8 symbols by their 2nd/3rd strongest bins that make all its (8,4)
        codewords valid and the checksum hold, least power given up first."""
        import itertools

        sf = self.lora.sf
        order = np.argsort(pw, axis=1)[:, ::-1][:, :3]
        base = order[:, 0].copy()
        cost_of = pw[np.arange(8)[:, None], order]
        trials: list[tuple[float, np.ndarray]] = []
        for j in range(8):
            for a in (1, 2):
                cand = base.copy()
                cand[j] = order[j, a]
                trials.append((float(cost_of[j, 0] - cost_of[j, a]), cand))
        for j1, j2 in itertools.combinations(range(8), 2):
            for a1, a2 in itertools.product((1, 2), repeat=2):
                cand = base.copy()
                cand[j1], cand[j2] = order[j1, a1], order[j2, a2]
                trials.append((float(cost_of[j1, 0] - cost_of[j1, a1] + cost_of[j2, 0]
                                     - cost_of[j2, a2]), cand))
        trials.sort(key=lambda t: t[0])
        for _, cand in trials:
            bits = modem.deinterleave(modem._values(cand, sf, sf - 2), sf - 2)
            if modem.hamming_decode(bits, 4)[1].any():
                continue
            got = modem.decode_header(cand, sf)
            if got[3]:
                return got, cand
        return None

    def _fail_frame(self, st: dict[str, Any]) -> str:
        # go on after the preamble: the frame may hide another one's preamble
        self.scan = int(math.ceil(st["sigma"] + (self.lora.preamble_len + 2) * self.n))
        return "fail"

    def _finish(self, st, spec, pw, syms, dec) -> LoraFrame:
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        n_sym = st["n_sym"]
        k = syms
        rows = np.arange(len(k))
        peak = pw[rows, k]
        noise = (pw.sum(axis=1) - peak) / (n - 1)
        sig = np.maximum(peak - noise, 1e-30)
        snr = float(np.mean(sig) / max(np.mean(noise) * n, 1e-30))
        amps = spec[rows, k] / n
        # the preamble chirps (all but the first): known value 0
        p_idx = -(pre + 4.25) + np.arange(1, pre)
        pspec = self._spectra(st, p_idx)
        ppw = _power(pspec)
        kp = ppw.sum(axis=0).argmax()
        pamps = pspec[:, kp] / n
        starts_raw = self._sym_starts(st, np.arange(n_sym + 1, dtype=float))
        p_raw = self._sym_starts(st, p_idx)
        r0 = int(math.floor(self._sym_starts(st, np.array([-(pre + 4.25)]))[0]))
        r1 = int(math.ceil(starts_raw[-1]))
        seg = self.raw[max(r0 - self.raw0, 0): max(r1 - self.raw0, 0), self.use_ch]
        rssi = float(10 * np.log10(max(np.mean(np.abs(seg) ** 2), 1e-30))) if len(seg) else \
            float("nan")
        self.frames_found += 1
        self.scan = int(math.ceil((starts_raw[-1] - (self.os - 1) / 2) / self.os))
        t = self.t_base
        return LoraFrame(
            start_s=t + float(self._sym_starts(st, np.array([-(pre + 4.25)]))[0]) / self.fs,
            end_s=t + starts_raw[-1] / self.fs,
            payload=dec.payload, crc_ok=dec.crc_ok, sf=lora.sf, cr=dec.cr,
            bw_hz=lora.bw_hz, has_crc=dec.has_crc, snr_db=10 * math.log10(snr),
            rssi_db=rssi, cfo_hz=float(st["cfo_hz"]), sco_ppm=float(st["sco"] * 1e6),
            timing_chips=float(st["sigma"] - math.floor(st["sigma"])),
            symbols=np.asarray(syms, np.int64), amplitudes=amps.astype(np.complex64),
            preamble_amplitudes=pamps.astype(np.complex64),
            chirp_times_s=t + starts_raw[:-1] / self.fs, preamble_times_s=t + p_raw / self.fs,
            corrected=dec.corrected,
        )


def shared_receiver(pipeline: Any, frames: Frames, params: ReceiverParams | None = None
                    ) -> list[LoraFrame]:
    """The frames of ``frames`` from the stream's shared :class:`LoraReceiver` (one per
    stream and configuration: ``lora_packet`` and the LoRa sensing pipelines decode each
    chunk once), or from a receiver of the pipeline's own when it is not bound.

    Parameters
    ----------
    pipeline : agent.pipelines.Pipeline
        The calling pipeline (``shared`` is its stream's shared stages, or None).
    frames : Frames
        The chunk.
    params : ReceiverParams, optional
        Receiver options (default: defaults).
    """
    params = params or ReceiverParams()
    shared = getattr(pipeline, "shared", None)
    if shared is None:
        rx = pipeline.__dict__.setdefault("_own_lora_receiver", LoraReceiver(params))
        return rx.push(frames)
    return shared.get(("lora_receiver", params), lambda: LoraReceiver(params)).push(frames)


def shared_receiver_flush(pipeline: Any, params: ReceiverParams | None = None
                          ) -> list[LoraFrame]:
    """End of stream for :func:`shared_receiver` (the same frames for every caller)."""
    params = params or ReceiverParams()
    shared = getattr(pipeline, "shared", None)
    if shared is None:
        rx = pipeline.__dict__.get("_own_lora_receiver")
        return rx.flush() if rx is not None else []
    return shared.get(("lora_receiver", params), lambda: LoraReceiver(params)).analysis.flush()


def receiver_of(pipeline: Any, params: ReceiverParams | None = None) -> LoraReceiver | None:
    """The receiver :func:`shared_receiver` uses for ``pipeline`` (for its counters and
    ``problem``), or None before the first chunk."""
    params = params or ReceiverParams()
    shared = getattr(pipeline, "shared", None)
    if shared is None:
        return pipeline.__dict__.get("_own_lora_receiver")
    return shared.get(("lora_receiver", params), lambda: LoraReceiver(params)).analysis


def receive_iq(iq: np.ndarray, fs_hz: float, lora: LoraParams | dict[str, Any], *,
               center_hz: float | None = None, chunk: int = 1 << 16, **options: Any
               ) -> list[LoraFrame]:
    """Every frame in an in-memory IQ array ``(n,)`` or ``(n, channels)`` (pushed through a
    :class:`LoraReceiver` in chunks of ``chunk`` samples; ``options``: ReceiverParams)."""
    lora = lora if isinstance(lora, LoraParams) else LoraParams.from_options(lora)
    iq = np.asarray(iq)
    iq = iq if iq.ndim == 2 else iq[:, None]
    rx = LoraReceiver(lora=lora, **options)
    meta = {"format": "memory", "lora": lora.model_dump(), "soil": None,
            "center_hz": center_hz}
    out: list[LoraFrame] = []
    for i in range(0, len(iq), chunk):
        part = np.ascontiguousarray(iq[i: i + chunk], dtype=np.complex64)
        fr = Frames.prevalidated({"fs_hz": float(fs_hz), "modality": "lora_iq",
                                  "source": "memory"}, data=part,
                                 times_s=(i + np.arange(len(part))) / fs_hz, meta=meta)
        out += rx.push(fr)
    return out + rx.flush()
