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
from sensing.lora.chirp_amplitude import ChirpAmplitudes
from sensing.lora.params import LoraParams, lora_from_meta
from sensing.params import Params, param

__all__ = ["ReceiverParams", "LoraReceiver", "LoraFrame", "shared_receiver", "receive_iq",
           "frame_chirps"]


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
    strong_link_db: float | None = param(
        10.0, unit="dB", doc="search for preambles on the first channel alone while the "
                             "last frame's in-band SNR was at least this and that channel "
                             "had a tenth of its power or more (half the search work on "
                             "two antennas; None: always every channel)")


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
    header_ok : bool
        False for a frame that was synchronised but whose header did not decode (only
        from a receiver made with ``undecoded=True``, for sensing): ``payload`` empty, no
        symbols; its preamble chirps are valid.
    peak_db, preamble_peak_db : numpy.ndarray
        float32: each chirp's dechirped peak power over the mean power of the other bins
        (all channels added), dB, for ``amplitudes`` and ``preamble_amplitudes``.
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
    header_ok: bool = True
    peak_db: np.ndarray | None = None
    preamble_peak_db: np.ndarray | None = None


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


def _swrap(x: float, period: float) -> float:
    """:func:`_wrap` of one number (plain float arithmetic)."""
    return (float(x) + period / 2) % period - period / 2


def _cis(start: float, step: float, n: int) -> np.ndarray:
    """``exp(2πj (start + step·k))`` for k = 0 … n−1 (complex64; phases in cycles).

    Built as the outer product of two short tables (``exp`` of about 2√n values instead of
    n; complex ``exp`` is the costly part), the phases reduced mod 1 in double precision.
    """
    b = 64 if n > 256 else max(1, n)
    a = -(-n // b)
    outer = np.exp(2j * np.pi * ((start + step * b * np.arange(a)) % 1.0))
    inner = np.exp(2j * np.pi * ((step * np.arange(b)) % 1.0))
    return (outer[:, None] * inner[None, :]).astype(np.complex64).ravel()[:n]


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
    undecoded : bool
        Also return the frames that were synchronised but whose header did not decode,
        with ``header_ok`` False and only their preamble chirps (the sensing pipelines
        use those chirps; ``lora_packet`` skips them).
    """

    Params = ReceiverParams

    def __init__(self, params: ReceiverParams | None = None, /, *,
                 lora: LoraParams | None = None, undecoded: bool = False,
                 **options: Any) -> None:
        self.params = ReceiverParams.build(params, options, where="lora receiver")
        #: Also return synchronised frames whose header failed (``header_ok`` False).
        self.undecoded = undecoded
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
        self.thr_one = _gamma_isf(p.false_alarm / self.n, m) / m  # one channel
        self._strong = False   # search on the first channel alone (strong_link_db)
        # four windows (two sync words, two down-chirps), each in units of its mean power
        self.thr_struct = _gamma_isf(1e-3 / self.n, 4 * n_c) / n_c
        self.keep_chips = (lora.preamble_len + 10) * self.n
        # buffers: raw samples and their chip-rate boxcar average
        self._raw = _Grow(self.n_ch)
        self.raw0 = 0          # absolute raw index of raw[0]
        self._chips = _Grow(n_c)
        self.chip0 = 0         # absolute chip index of chips[0]
        # one sample per chip and every channel decoded: the chips are the raw samples
        self._chips_are_raw = os_ == 1 and n_c == self.n_ch
        self.scan = 0          # absolute chip index of the next detection window
        self._n_sym_guess = 0  # symbols of the last frame decoded on the fast path
        self.n_grids = 2 if os_ % 2 == 0 else 1
        self.win_next = 0      # next grid window whose statistics are computed
        self._tails: list[np.ndarray | None] = [None] * self.n_grids
        self._stat_w0 = 0      # sum-window index of the first kept statistics
        self._stat_ok: list[np.ndarray] = []
        self._stat_k: list[np.ndarray] = []
        self._ok_arr: np.ndarray | None = None
        self._k_arr: np.ndarray | None = None
        self.pending: dict[str, Any] | None = None
        self._ready = True
        return True

    @property
    def horizon_s(self) -> float:
        """Stream time (s) before which every frame that starts there has been returned
        (a frame is returned once its last sample has arrived); ``inf`` after
        :meth:`flush`, ``-inf`` before the first samples."""
        if self._flushed is not None:
            return math.inf
        if not self._ready:
            return -math.inf
        c = self.scan if self.pending is None else min(self.scan, self.pending["hold"])
        c -= (self.lora.preamble_len + 2 + self.params.detect_windows) * self.n
        return self.t_base + c * self.os / self.fs

    @property
    def raw(self) -> np.ndarray:
        """The raw samples kept (n, channels), from absolute index ``raw0``."""
        return self._raw.view

    @property
    def chips(self) -> np.ndarray:
        """The chip averages kept (n, decoded channels), from absolute chip ``chip0``."""
        return self._raw.view if self._chips_are_raw else self._chips.view

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
        if self._chips_are_raw:
            return
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
        if drop > 0 and not self._chips_are_raw:
            self._chips.drop(drop)
            self.chip0 += drop
        drop_raw = max(keep_from, 0) * self.os - self.raw0 - 4 * self.os
        if drop_raw > 0:
            self._raw.drop(drop_raw)
            self.raw0 += drop_raw
        if self._chips_are_raw:
            self.chip0 = self.raw0

    # ------------------------------------------------------------------ preamble search
    def _scan_windows(self) -> None:
        """Detection statistics of the grid windows from ``scan`` on (batched FFTs), up
        to the end of the samples or the first batch with a detection.

        Window ``w`` of grid 0 covers chips ``w·N … w·N + N``; grid 1 (even ``os``) the
        same half a chip later. For each sum-window ``w`` (windows ``w … w+m−1``) we keep
        its peak bin and whether it passes the detection test (:meth:`_find` looks them
        up); the powers of the last ``m − 1`` windows are carried to the next chunk."""
        n, os_, m = self.n, self.os, self.params.detect_windows
        end = (self.chip0 + len(self.chips)) // n
        if self.n_grids > 1:
            end = min(end, (self._raw_end() - os_ // 2) // (n * os_))
        start = max(self.win_next, -(-max(self.chip0, 0, self.scan) // n))
        if start != self.win_next:  # windows skipped (a frame, or trimmed): restart
            self._tails = [None] * self.n_grids
            self._stat_w0, self._stat_ok, self._stat_k = start, [], []
            self._ok_arr = self._k_arr = None
        if end <= start:
            return
        batch = max(2 * m, 32768 // n)
        b1 = start
        one = self._strong and self.chips.shape[1] > 1
        thr = self.thr_one if one else self.thr
        ch = slice(0, 1) if one else slice(None)
        for b0 in range(start, end, batch):
            b1 = min(end, b0 + batch)
            oks, ks = [], []
            for g in range(self.n_grids):
                if g == 0:
                    i0 = b0 * n - self.chip0
                    win = self.chips[i0: i0 + (b1 - b0) * n, ch]
                else:
                    r = b0 * n * os_ + os_ // 2 - self.raw0
                    seg = self.raw[r: r + (b1 - b0) * n * os_, self.use_ch][:, ch]
                    win = seg[0::os_].copy()
                    for j in range(1, os_):
                        win += seg[j::os_]
                win = win.reshape(b1 - b0, n, -1)
                f = _fft().fft(win * self.down[None, :, None], axis=1, overwrite_x=True)
                pw = _power(f)  # (B, N)
                tail = self._tails[g]
                allp = np.concatenate([tail, pw]) if tail is not None else pw
                self._tails[g] = allp[-(m - 1):] if m > 1 else allp[:0]
                ok, k = self._detect_stats(allp, m, thr)
                oks.append(ok)
                ks.append(k)
            self._stat_ok.append(np.stack(oks))
            self._stat_k.append(np.stack(ks))
            if any(o.any() for o in oks):
                break
        self.win_next = b1
        self._ok_arr = self._k_arr = None

    def _detect_stats(self, allp: np.ndarray, m: int, thr: float
                      ) -> tuple[np.ndarray, np.ndarray]:
        """For every sum-window of ``allp`` (rows ``i … i+m−1``): passes the detection
        test (peak of the summed powers over ``detect_ratio`` × its mean, and at least
        two of the ``m`` windows peaking within one bin of it), and its peak bin."""
        n = self.n
        n_sum = len(allp) - m + 1
        if n_sum <= 0:
            return np.zeros(0, bool), np.zeros(0, np.int64)
        s = allp[:n_sum].copy()  # s[i] = sum of allp[i : i+m]
        for j in range(1, m):
            s += allp[j: n_sum + j]
        peak = s.argmax(axis=1)
        ratio = s[np.arange(n_sum), peak] / np.maximum(s.sum(axis=1) * (1.0 / n), 1e-30)
        tops = allp.argmax(axis=1) + (n + 1)  # (+1: |wrapped difference| ≤ 1 ⇔ mod n ≤ 2)
        near = np.zeros(n_sum, np.int64)
        for j in range(m):
            near += (tops[j: n_sum + j] - peak) % n <= 2
        return (ratio > thr) & (near >= 2), peak

    def _find(self) -> tuple[int, int] | None:
        """The first sum-window starting at or after ``scan`` that passes the detection
        test (either grid; the chip grid first on a tie): (absolute chip start of its last
        window, peak bin), or None."""
        if self._ok_arr is None:
            if not self._stat_ok:
                return None
            self._ok_arr = np.concatenate(self._stat_ok, axis=1)
            self._k_arr = np.concatenate(self._stat_k, axis=1)
            self._stat_ok, self._stat_k = [self._ok_arr], [self._k_arr]
        n = self.n
        first = -(-self.scan // n) - self._stat_w0
        ok = self._ok_arr
        if first >= ok.shape[1]:
            return None
        first = max(first, 0)
        best = None
        for g in range(ok.shape[0]):
            hits = np.flatnonzero(ok[g, first:])
            if len(hits) and (best is None or hits[0] < best[0]):
                best = (int(hits[0]), g)
        if best is None:
            return None
        i = first + best[0]
        w = self._stat_w0 + i
        return (w + self.params.detect_windows - 1) * n, int(self._k_arr[best[1], i])

    def _trim_stats(self) -> None:
        """Drop the statistics of sum-windows before ``scan``."""
        if self._ok_arr is None:
            return
        drop = -(-self.scan // self.n) - self._stat_w0
        if drop > 0:
            drop = min(drop, self._ok_arr.shape[1])
            self._ok_arr = self._ok_arr[:, drop:]
            self._k_arr = self._k_arr[:, drop:]
            self._stat_ok, self._stat_k = [self._ok_arr], [self._k_arr]
            self._stat_w0 += drop

    # ------------------------------------------------------------------ main loop
    def _process(self, out: list[LoraFrame], final: bool = False) -> None:
        while True:
            if self.pending is not None:
                state = self._continue(self.pending, final)
                if state == "wait":
                    return
                self.pending = None
                if isinstance(state, LoraFrame):
                    self.frames_found += state.header_ok
                    out.append(state)
                self._strong = isinstance(state, LoraFrame) and self._is_strong(state)
                continue
            hit = self._find()
            if hit is None:
                self._scan_windows()
                hit = self._find()
            if hit is None:
                self.scan = max(self.scan, (self.win_next - self.params.detect_windows + 1)
                                * self.n)
                self._trim_stats()
                return
            p_w, k = hit
            self.candidates += 1
            self.pending = {"stage": "sync", "p_w": p_w, "k": k,
                            "hold": p_w - self.keep_chips}

    def _give_up(self, p_w: int) -> str:
        self.scan = p_w + self.n
        return "fail"

    def _continue(self, st: dict[str, Any], final: bool) -> Any:
        if st["stage"] in ("sync", "fast"):
            if not st.get("full"):
                got = (self._fast_sync(st, final) if st["stage"] == "sync"
                       else self._fast_demod(st, final))
                if got is not None:
                    return got
                # the fast path did not give a valid frame: the full procedure
                st = self.pending = {"stage": "sync", "p_w": st["p_w"], "k": st["k"],
                                     "hold": st["hold"], "full": True}
            return self._sync(st, final)
        return self._demod_frame(st, final)

    # ------------------------------------------------------------------ fast path
    def _fast_sync(self, st: dict[str, Any], final: bool) -> Any:
        """Coarse synchronisation on the chip grid only (no second grid, no resampled
        fine pass), then :meth:`_fast_demod`. None: not found this way (the full
        procedure follows); ``"wait"``: more samples needed."""
        k, q0, js, enough = self._sync_grid(st)
        if not enough:
            return None if final else "wait"
        z = self._boxcar(q0, js)
        found = (self._sync_windows(q0, js, z=z, fast=True,
                                    want_drift=not (self.params.sco_from_cfo
                                                    and self.center_hz))
                 if z is not None else None)
        if found is None:
            return None
        fast = dict(st, stage="fast", **self._sync_state(found))
        fast["hold"] = st["hold"]
        self.pending = fast
        return self._fast_demod(fast, final)

    def _fast_demod(self, st: dict[str, Any], final: bool) -> Any:
        """Header from the chip averages at the nearest whole chips (carrier offset
        removed), then every chirp of the frame (preamble, header, payload) resampled in
        one pass (:meth:`_spectra`) and decoded. A frame only when its CRC holds; None
        otherwise (the full procedure follows), ``"wait"`` for more samples."""
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        if lora.implicit_header:
            return None
        if "n_sym" not in st and self._n_sym_guess:
            # frames of one link are alike: guess the last one's length, check below
            st["n_sym"], st["guess"] = self._n_sym_guess, True
        if "n_sym" not in st:
            c = st["sigma"] + (pre + 4.25 + np.arange(8)) * n * (1.0 - st["sco"])
            ci = np.rint(c).astype(np.int64)
            if ci[-1] + n + 1 > self.chip0 + len(self.chips):
                return None if final else "wait"
            if ci[0] < self.chip0:
                return None
            win = self.chips[(ci - self.chip0)[:, None] + np.arange(n)]  # (8, N, C)
            f_chip = st["cfo_hz"] / lora.bw_hz  # carrier cycles per chip
            rot = (np.exp(-2j * np.pi * ((f_chip * ci) % 1.0)).astype(np.complex64)[:, None]
                   * (_cis(0.0, -f_chip, n) * self.down)[None, :])
            w = win * rot[:, :, None]
            syms = _power(_fft().fft(w, axis=1)).argmax(axis=1)
            length, cr, has_crc, ok, _ = modem.decode_header(syms, lora.sf)
            if not ok or not has_crc:
                return None
            ldro = lora.ldro_on
            n_sym = modem.n_payload_symbols(length, lora.sf, cr, has_crc=has_crc,
                                            implicit_header=False, ldro=ldro)
            st.update({"length": length, "cr": cr, "has_crc": has_crc, "ldro": ldro,
                       "n_sym": n_sym})
        n_sym = st["n_sym"]
        need = self._sym_starts(st, np.array([float(n_sym)]))[0] + 64 * self.os
        if need > self._raw_end():
            return None if final else "wait"
        p_idx = -(pre + 4.25) + np.arange(1, pre)
        spec_all = self._spectra(st, np.concatenate([p_idx, np.arange(n_sym)]))
        pspec, spec = spec_all[: pre - 1], spec_all[pre - 1:]
        pw = _power(spec)
        if st.pop("guess", False):
            st.update({"length": 0, "cr": lora.cr, "has_crc": True, "ldro": lora.ldro_on})
            dec, syms = self._decode(st, pw)
            if dec is None:  # a bad header, or longer than guessed
                length, cr, has_crc, ok, _ = modem.decode_header(pw[:8].argmax(axis=1),
                                                                 lora.sf)
                if not ok or not has_crc:
                    return None
                true_n = modem.n_payload_symbols(length, lora.sf, cr, has_crc=has_crc,
                                                 implicit_header=False, ldro=lora.ldro_on)
                if true_n <= n_sym:
                    return None
                st.update({"length": length, "cr": cr, "has_crc": has_crc,
                           "n_sym": true_n})
                return self._fast_demod(st, final)  # again with the right length
            st.update({"length": len(dec.payload), "cr": dec.cr, "has_crc": dec.has_crc,
                       "n_sym": dec.n_symbols})
            n_sym, spec, pw, syms = (dec.n_symbols, spec[: dec.n_symbols],
                                     pw[: dec.n_symbols], syms[: dec.n_symbols])
        else:
            dec, syms = self._decode(st, pw)
        if dec is None or dec.crc_ok is not True or dec.n_symbols != n_sym:
            return None
        self._n_sym_guess = n_sym
        return self._finish(st, spec, pw, syms, dec, pspec=pspec)

    def _sync_state(self, found: dict[str, Any]) -> dict[str, Any]:
        """The frame's timing and offsets from a :meth:`_sync_windows` result."""
        n, lora = self.n, self.lora
        cfo, delta, sco = found["cfo"], found["delta"], found["sco"]
        # preamble start, chips (real): the first down-chirp began delta before its window
        sigma = found["q_d"] - delta - (lora.preamble_len + 2) * n * (1.0 - sco)
        return {"sigma": sigma, "cfo": cfo, "cfo_hz": cfo * lora.bw_hz / n, "sco": sco,
                "sco_guess": found["drift"] / n, "gap": found["gap"]}

    # ------------------------------------------------------------------ sync
    def _sync_grid(self, st: dict[str, Any]) -> tuple[int, float, np.ndarray, bool]:
        """The candidate's symbol grid: the detected bin ``k``, the chip ``q0`` where its
        symbol starts, the symbol offsets ``js`` searched around it (within the stream) and
        whether enough samples have arrived to search them all."""
        n, pre = self.n, self.lora.preamble_len
        k = int(_swrap(st["k"], n))
        q0 = float(st["p_w"] - k)
        js = np.arange(-pre, pre + 5)
        first = max(q0 - pre * n, float(self.chip0))
        js = js[q0 + js * n >= first - 1e-9]
        last_raw = (q0 + (js[-1] + 1) * n + 1) * self.os + 16 * self.os
        return k, q0, js, last_raw <= self._raw_end()

    def _sync(self, st: dict[str, Any], final: bool) -> Any:
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        k, q0, js, enough = self._sync_grid(st)
        if not enough:
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
        st.update(self._sync_state(found))
        st.update({"stage": "header", "hold": int(math.floor(st["sigma"])) - 2 * n})
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
                      z: np.ndarray | None = None, drift: float | None = None,
                      want_drift: bool = True, fast: bool = False
                      ) -> dict[str, Any] | None:
        """Locate the sync word and down-chirps in windows starting at chips ``q + j·N``
        (``js``; resampled from the raw samples) and estimate the offsets; None when the
        frame structure is not there. ``i_d``: the index in ``js`` of the first
        down-chirp when known. ``fast``: the structure located by the sync words alone,
        then checked with the two down-chirps there (the full search dechirps every
        window both ways)."""
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        if z is None:
            base = q + js[0] * n
            z = self._resample(base * self.os + (self.os - 1) / 2.0, len(js) * n)
        w = z.reshape(len(js), n, -1)
        fu = _fft().fft(w * self.down[None, :, None], axis=1)  # (J, N, C)
        pu = _power(fu)
        if fast and i_d is None:
            s1, s2 = self.sync
            mu = np.maximum(pu.sum(axis=1) * (1.0 / n), 1e-30)
            near1 = pu[:, (s1 + np.arange(-1, 2)) % n].max(axis=1) / mu
            near2 = pu[:, (s2 + np.arange(-1, 2)) % n].max(axis=1) / mu
            cand = np.flatnonzero((np.arange(len(js) - 1) >= 2) & (js[:-1] >= -1))
            if not len(cand):
                return None
            sync = near1[cand - 2] + near2[cand - 1]
            i_d = int(cand[sync.argmax()])
            fdd = _fft().fft(w[i_d: i_d + 2] * self.up[None, :, None], axis=1)
            pdd = _power(fdd)
            nd = pdd / np.maximum(pdd.sum(axis=1, keepdims=True) * (1.0 / n), 1e-30)
            total = float((nd[0] + nd[1]).max()) + float(sync.max())
            if total < self.thr_struct:
                return None
            got1, got2 = int(pu[i_d - 2].argmax()), int(pu[i_d - 1].argmax())
            if not (abs(_swrap(got1 - s1, n)) <= 1 or abs(_swrap(got2 - s2, n)) <= 1):
                return None
            score = total
        elif i_d is None:
            fd = _fft().fft(w * self.up[None, :, None], axis=1)
            pd = _power(fd)
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
            if not (abs(_swrap(got1 - s1, n)) <= 1 or abs(_swrap(got2 - s2, n)) <= 1):
                return None
            score = float(total.max())
            fdd, pdd = fd[i_d: i_d + 2], pd[i_d: i_d + 2]
        else:
            score = 0.0
            fdd = _fft().fft(w[i_d: i_d + 2] * self.up[None, :, None], axis=1)
            pdd = _power(fdd)
        # up tone from the preamble windows (all but the first, and not the sync words)
        up_idx = np.arange(max(0, i_d - pre), i_d - 2)
        if len(up_idx) < 2 or i_d + 2 > len(js):
            return None
        ups = slice(int(up_idx[0]), int(up_idx[-1]) + 1)
        i_up, a_up, _ = self._tone(fu[ups], pu[ups])
        i_dn, a_dn, _ = self._tone(fdd, pdd)
        # in-window tones: f_up = delta + cfo, f_down = -delta + cfo (mod N); the phase
        # advance between windows gives the fraction of the cfo (the chirps repeat).
        # A clock offset p makes delta grow by N p per window: f_up is the tone at the
        # middle of the preamble windows, f_down at window i_d.
        i_dn = _swrap(i_dn - i_up, n) + i_up
        if drift is not None or not want_drift:
            # given (from the coarse pass, whose windows straddle the chirps' starts: a
            # less biased slope), or not needed (the clock offset from the carrier's)
            per = np.zeros(0)
            drift = drift or 0.0
        else:
            kk = int(pu[up_idx].sum(axis=0).argmax())
            per = np.array(_jacobsen(fu[up_idx], np.full(len(up_idx), kk)))
            drift = 0.0
        if len(per) >= 4:  # kept when clearly above its standard error
            x = np.arange(len(per)) - (len(per) - 1) / 2
            slope = float((x * per).sum() / (x * x).sum())
            res = per - per.mean() - slope * x
            se = math.sqrt(float((res * res).sum()) / (len(per) - 2) / float((x * x).sum()))
            if abs(slope) > 4 * se:
                drift = slope
        gap = i_d - (up_idx[0] + up_idx[-1]) / 2  # windows from the preamble middle to i_d
        frac = math.atan2((a_up + a_dn).imag, (a_up + a_dn).real) / (2 * np.pi)
        sco = 0.0
        cfo = 0.0
        for _ in range(2):  # the clock offset follows from the carrier offset
            coarse = _swrap((i_up + i_dn - n * sco * gap) / 2, n / 2)
            cfo = coarse + _swrap(frac - coarse, 1.0)
            if self.params.sco_from_cfo and self.center_hz:
                sco = cfo * lora.bw_hz / n / float(self.center_hz)
            else:
                sco = drift / n
        delta = _swrap(i_up - cfo + n * sco * gap, n)  # at window i_d
        return {"q_d": q + js[i_d] * n, "delta": delta, "cfo": cfo, "sco": sco,
                "drift": drift, "gap": float(gap), "score": score + float(pu[ups].max())
                / max(float(pu[ups].sum()) / pu[ups].size, 1e-30)}

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
        tot = (rot.astype(np.complex64)[:, None, None] * f[:, near]).sum(axis=0)  # k-2 … k+2
        m = int(_power(tot[1:4]).argmax()) + 1  # k-1, k or k+1
        a, b, c = tot[m - 1], tot[m], tot[m + 1]  # (C,) each
        num, den = a - c, 2 * b - a - c
        d = float((den.real ** 2 + den.imag ** 2).sum())
        frac = float((num * np.conj(den)).real.sum()) / d if d > 0 else 0.0
        interp = k + (m - 2) + min(max(frac, -0.5), 0.5)
        return interp, adv, n_win

    # ------------------------------------------------------------------ demodulation
    def _finish_index(self, pre: int, n_sym: int) -> np.ndarray:
        """Symbol indices of a frame's start, its preamble chirps but the first, and its
        symbols' starts and end (cached per length)."""
        cache = self.__dict__.setdefault("_finish_idx", {})
        idx = cache.get(n_sym)
        if idx is None:
            idx = cache[n_sym] = np.concatenate([
                -(pre + 4.25) + np.arange(pre, dtype=float),
                np.arange(n_sym + 1, dtype=float)])
        return idx

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
        z, c0, step = self._resample_band(base, n_out, cfo_hz)
        if c0 or step:
            z = z * _cis(-c0, -step, n_out)[:, None]
        return z

    def _resample_band(self, base: float, n_out: int, cfo_hz: float
                       ) -> tuple[np.ndarray, float, float]:
        """:meth:`_resample` but for the residual carrier rotation, returned instead:
        ``(z, c0, step)``, sample j still to be multiplied by ``exp(−2πj (c0 + step·j))``.
        """
        os_, margin = self.os, 16
        lc = self._fft_len(n_out + 2 * margin)
        fl = math.floor(base)
        s0 = fl - margin * os_
        frac = base - fl
        i0 = s0 - self.raw0
        big = lc * os_
        seg = self.raw[max(i0, 0): max(i0 + big, 0), self.use_ch]
        if i0 < 0 or len(seg) < big:  # pad at the edges of the buffer
            full = np.zeros((big, seg.shape[1]), np.complex64)
            off = max(-i0, 0)
            full[off: off + len(seg)] = seg
            seg = full
        spec = _fft().fft(seg, axis=0)
        # the carrier offset: a whole number m of bins moves the band, the rest is
        # removed at the chip rate
        m = int(round(cfo_hz * big / self.fs))
        h = lc // 2
        # bins m … m+h−1 and m−h … m−1 (all of them at os = 1: a circular shift)
        sel = np.arange(lc)
        sel[h:] += big - lc
        sel += m
        sel %= big
        spec = spec.take(sel, axis=0)
        # the fractional delay: bin k (k − lc for k ≥ h) turns by alpha·k cycles
        alpha = (frac / os_) / lc
        slope = _cis(0.0, alpha, lc)
        slope[h:] *= np.complex64(complex(math.cos(2 * math.pi * alpha * lc),
                                          -math.sin(2 * math.pi * alpha * lc)))
        if os_ > 1:
            slope *= np.float32(1.0 / os_)
        spec *= slope[:, None]
        z = _fft().ifft(spec, axis=0, overwrite_x=True)[margin: margin + n_out]
        # z[j] is at raw time s0 + frac + os (margin + j); the band moved by m bins
        res = cfo_hz - m * self.fs / big
        if not (m or res):
            return z, 0.0, 0.0
        # phase −2π (res·t_j + m·fs/big·s0/fs), t_j = (s0 + frac + os (margin + j))/fs,
        # its constant part reduced mod 1 cycle in double precision
        c0 = (res * (s0 + frac + os_ * margin) / self.fs + m * s0 / big) % 1.0
        return z, c0, res * os_ / self.fs

    def _fft_len(self, n: int) -> int:
        """An even fast FFT length ≥ n (cached)."""
        cache = self.__dict__.setdefault("_fft_lens", {})
        lc = cache.get(n)
        if lc is None:
            from scipy.fft import next_fast_len

            lc = next_fast_len(n)
            while lc % 2:
                lc = next_fast_len(lc + 1)
            cache[n] = lc
        return lc


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
            z, c0, step = self._resample_band(r[0], int(offs[-1]) + n, st["cfo_hz"])
            win = z[offs[:, None] + np.arange(n)]  # (nb, N, C)
            # dechirp and the residual carrier rotation in one reference per window
            ref = (np.exp(-2j * np.pi * ((c0 + step * offs) % 1.0)).astype(np.complex64)
                   [:, None] * (_cis(0.0, -step, n) * self.down)[None, :])
            out[b0: b0 + len(sel)] = _fft().fft(win * ref[:, :, None], axis=1)
        return out

    def _demod(self, st: dict[str, Any], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spec = self._spectra(st, idx)
        pw = _power(spec)
        return spec, pw

    def _demod_frame(self, st: dict[str, Any], final: bool) -> Any:
        n, lora = self.n, self.lora
        need = self._sym_starts(st, np.array([8.0]))[0] + 64 * self.os
        if need > self._raw_end():
            return self._no_header(st) if final else "wait"
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
                    return self._no_header(st)
            ldro = lora.ldro_on
            n_sym = modem.n_payload_symbols(length, lora.sf, cr, has_crc=has_crc,
                                            implicit_header=lora.implicit_header, ldro=ldro)
            st.update({"stage": "payload", "length": length, "cr": cr, "has_crc": has_crc,
                       "ldro": ldro, "n_sym": n_sym})
        n_sym = st["n_sym"]
        need = self._sym_starts(st, np.array([float(n_sym)]))[0] + 64 * self.os
        if need > self._raw_end():
            return self._no_header(st) if final else "wait"
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
            return self._no_header(st)
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

    def _no_header(self, st: dict[str, Any]) -> Any:
        """A synchronised frame without a decodable header: "fail", or (``undecoded``) a
        :class:`LoraFrame` with ``header_ok`` False and its preamble chirps."""
        if not self.undecoded:
            return self._fail_frame(st)
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        p_idx = -(pre + 4.25) + np.arange(1, pre)
        pspec = self._spectra(st, p_idx)
        ppw = _power(pspec)
        kp = int(ppw.sum(axis=0).argmax())
        p_peak, p_db = self._peaks(ppw, np.full(len(ppw), kp))
        noise = (ppw.sum(axis=1) - p_peak) / (n - 1)
        snr = float(np.mean(np.maximum(p_peak - noise, 1e-30))
                    / max(float(np.mean(noise)) * n, 1e-30))
        p_raw = self._sym_starts(st, p_idx)
        t = self.t_base
        frame = LoraFrame(
            start_s=t + float(self._sym_starts(st, np.array([-(pre + 4.25)]))[0]) / self.fs,
            end_s=t + float(self._sym_starts(st, np.array([0.0]))[0]) / self.fs,
            payload=b"", crc_ok=None, sf=lora.sf, cr=0, bw_hz=lora.bw_hz, has_crc=False,
            snr_db=10 * math.log10(snr), rssi_db=float("nan"), cfo_hz=float(st["cfo_hz"]),
            sco_ppm=float(st["sco"] * 1e6),
            timing_chips=float(st["sigma"] - math.floor(st["sigma"])),
            symbols=np.zeros(0, np.int64),
            amplitudes=np.zeros((0, pspec.shape[-1]), np.complex64),
            preamble_amplitudes=(pspec[:, kp] / n).astype(np.complex64),
            chirp_times_s=np.zeros(0), preamble_times_s=t + p_raw / self.fs,
            header_ok=False, peak_db=np.zeros(0, np.float32), preamble_peak_db=p_db)
        self._fail_frame(st)
        return frame

    def _is_strong(self, f: LoraFrame) -> bool:
        """A frame strong enough that the next preamble can be searched for on the first
        channel alone (``strong_link_db``)."""
        db = self.params.strong_link_db
        if db is None or not f.header_ok or f.snr_db < db:
            return False
        a = f.preamble_amplitudes
        if a.shape[1] < 2:
            return True
        p = (a.real ** 2 + a.imag ** 2).mean(axis=0)
        return bool(p[0] >= 0.1 * p.sum())

    def _peaks(self, pw: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peak powers at bins ``k`` of power spectra ``pw`` (rows, N) and each peak over
        the mean of the other bins (dB, float32)."""
        peak = pw[np.arange(len(k)), k]
        rest = (pw.sum(axis=1) - peak) / max(self.n - 1, 1)
        db = 10 * np.log10(np.maximum(peak, 1e-30) / np.maximum(rest, 1e-30))
        return peak, db.astype(np.float32)

    def _fail_frame(self, st: dict[str, Any]) -> str:
        # go on after the preamble: the frame may hide another one's preamble
        self.scan = int(math.ceil(st["sigma"] + (self.lora.preamble_len + 2) * self.n))
        return "fail"

    def _finish(self, st, spec, pw, syms, dec, pspec=None) -> LoraFrame:
        n, lora = self.n, self.lora
        pre = lora.preamble_len
        n_sym = st["n_sym"]
        k = syms
        rows = np.arange(len(k))
        peak = pw[rows, k]
        noise = (pw.sum(axis=1) - peak) * (1.0 / (n - 1))
        peak_db = (10 * np.log10(np.maximum(peak, 1e-30) / np.maximum(noise, 1e-30))
                   ).astype(np.float32)
        snr = float(np.maximum(peak - noise, 1e-30).sum()) / max(float(noise.sum()) * n,
                                                                 1e-30)
        amps = spec[rows, k] * np.float32(1.0 / n)
        # the preamble chirps (all but the first): known value 0
        at_idx = self._finish_index(pre, n_sym)
        if pspec is None:
            pspec = self._spectra(st, at_idx[1: pre])
        ppw = _power(pspec)
        kp = int(ppw.sum(axis=0).argmax())
        pamps = pspec[:, kp] * np.float32(1.0 / n)
        p_peak = ppw[:, kp]
        p_rest = (ppw.sum(axis=1) - p_peak) * (1.0 / (n - 1))
        p_db = (10 * np.log10(np.maximum(p_peak, 1e-30) / np.maximum(p_rest, 1e-30))
                ).astype(np.float32)
        at = self._sym_starts(st, at_idx)
        first, p_raw, starts_raw = float(at[0]), at[1: pre], at[pre:]
        r0 = int(math.floor(first))
        r1 = int(math.ceil(starts_raw[-1]))
        seg = self.raw[max(r0 - self.raw0, 0): max(r1 - self.raw0, 0), self.use_ch]
        rssi = (float(10 * np.log10(max(float(np.vdot(seg, seg).real) / seg.size, 1e-30)))
                if seg.size else float("nan"))
        self.scan = int(math.ceil((starts_raw[-1] - (self.os - 1) / 2) / self.os))
        t = self.t_base
        return LoraFrame(
            start_s=t + first / self.fs,
            end_s=t + starts_raw[-1] / self.fs,
            payload=dec.payload, crc_ok=dec.crc_ok, sf=lora.sf, cr=dec.cr,
            bw_hz=lora.bw_hz, has_crc=dec.has_crc, snr_db=10 * math.log10(snr),
            rssi_db=rssi, cfo_hz=float(st["cfo_hz"]), sco_ppm=float(st["sco"] * 1e6),
            timing_chips=float(st["sigma"] - math.floor(st["sigma"])),
            symbols=np.asarray(syms, np.int64), amplitudes=amps.astype(np.complex64),
            preamble_amplitudes=pamps.astype(np.complex64),
            chirp_times_s=t + starts_raw[:-1] / self.fs, preamble_times_s=t + p_raw / self.fs,
            corrected=dec.corrected, peak_db=peak_db, preamble_peak_db=p_db,
        )


def _shared(pipeline: Any, params: ReceiverParams | None, create: bool = True) -> Any:
    """The stage (``push``/``analysis``) of ``pipeline``'s shared receiver for ``params``:
    the stream's :class:`agent.pipelines.shared.SharedStages` entry, or the pipeline's
    own when it is not bound (None with ``create`` False before the first chunk)."""
    params = params or ReceiverParams()
    shared = getattr(pipeline, "shared", None)
    if shared is None:
        own = pipeline.__dict__.setdefault("_own_lora_receivers", {})
        if params not in own:
            if not create:
                return None
            own[params] = _Own(LoraReceiver(params, undecoded=True))
        return own[params]
    return shared.get(("lora_receiver", params),
                      lambda: LoraReceiver(params, undecoded=True))


class _Own:
    """A pipeline's own receiver with the shared stage's interface."""

    def __init__(self, rx: LoraReceiver) -> None:
        self.analysis = rx

    def push(self, frames: Frames) -> list[LoraFrame]:
        return self.analysis.push(frames)


def shared_receiver(pipeline: Any, frames: Frames, params: ReceiverParams | None = None
                    ) -> list[LoraFrame]:
    """The frames of ``frames`` from the stream's shared :class:`LoraReceiver` (one per
    stream and configuration: ``lora_packet`` and the LoRa sensing pipelines decode each
    chunk once), or from a receiver of the pipeline's own when it is not bound.

    The shared receiver is made with ``undecoded=True``: frames whose header failed come
    too (``header_ok`` False; their preamble chirps serve sensing).

    Parameters
    ----------
    pipeline : agent.pipelines.Pipeline
        The calling pipeline (``shared`` is its stream's shared stages, or None).
    frames : Frames
        The chunk.
    params : ReceiverParams, optional
        Receiver options (default: defaults).
    """
    return _shared(pipeline, params).push(frames)


def shared_receiver_flush(pipeline: Any, params: ReceiverParams | None = None
                          ) -> list[LoraFrame]:
    """End of stream for :func:`shared_receiver` (the same frames for every caller)."""
    stage = _shared(pipeline, params, create=False)
    return stage.analysis.flush() if stage is not None else []


def receiver_of(pipeline: Any, params: ReceiverParams | None = None) -> LoraReceiver | None:
    """The receiver :func:`shared_receiver` uses for ``pipeline`` (for its counters and
    ``problem``), or None before the first chunk."""
    stage = _shared(pipeline, params, create=getattr(pipeline, "shared", None) is not None)
    return stage.analysis if stage is not None else None


def whole_oversampling(fs_hz: float | None, bw_hz: float | None) -> bool:
    """The receiver's condition on the sample rate: a whole multiple of the bandwidth."""
    if not fs_hz or not bw_hz:
        return False
    ratio = float(fs_hz) / float(bw_hz)
    return round(ratio) >= 1 and abs(ratio - round(ratio)) <= 1e-6


def frame_chirps(found: list[LoraFrame], min_peak_db: float = 0.0) -> ChirpAmplitudes:
    """The chirps of received frames for sensing: every frame's preamble chirps (all but
    the first) and, when its header decoded and its CRC did not fail, its header and
    payload chirps; those whose dechirped peak is at least ``min_peak_db`` over the other
    bins. ``times_s`` are the chirps' centres (s)."""
    if not found:
        return ChirpAmplitudes.empty(1)
    times, amps, bins, peaks = [], [], [], []
    for f in found:
        half = (1 << f.sf) / f.bw_hz / 2
        times.append(f.preamble_times_s + half)
        amps.append(f.preamble_amplitudes)
        bins.append(np.zeros(len(f.preamble_times_s), np.int64))
        peaks.append(f.preamble_peak_db if f.preamble_peak_db is not None
                     else np.full(len(f.preamble_times_s), np.inf, np.float32))
        if f.header_ok and f.crc_ok is not False and len(f.chirp_times_s):
            times.append(f.chirp_times_s + half)
            amps.append(f.amplitudes)
            bins.append(f.symbols)
            peaks.append(f.peak_db if f.peak_db is not None
                         else np.full(len(f.chirp_times_s), np.inf, np.float32))
    t, a, k, p = (np.concatenate(times), np.concatenate(amps), np.concatenate(bins),
                  np.concatenate(peaks))
    keep = p >= min_peak_db
    if not keep.all():
        t, a, k, p = t[keep], a[keep], k[keep], p[keep]
    return ChirpAmplitudes(t, a, k, p)


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
