"""Default plot of ``audio`` recordings (``ambisense plot``): the waveform envelope and a
spectrogram, with the events (motion spans, breathing rates, blinks)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.frames import Frames
from sensing.plot.base import (
    PLOTTERS,
    ChunkScan,
    PlotInputError,
    Plotter,
    Summary,
    check_columns,
    clip_chunk,
    event_time,
    events_in,
    initial_binner,
    n_output_columns,
)

#: Frequency rows of the spectrogram.
N_FREQ = 128


@dataclass
class AudioSummary(Summary):
    """:class:`~sensing.plot.base.Summary` of audio: per column the sample min/max of the
    channel mean and the mean power spectrum (``N_FREQ`` rows from 0 to fs/2, dB)."""

    fs_hz: float = 0.0
    env_min: np.ndarray | None = None
    env_max: np.ndarray | None = None
    spec_db: np.ndarray | None = None  # (spectrogram columns, N_FREQ)
    spec_edges_s: np.ndarray | None = None  # spectrogram column edges (s)


def _frame_len(fs: float) -> int:
    return int(2 ** max(6, round(np.log2(fs / 20.0))))  # ≈ 50 ms


@PLOTTERS.register("audio")
class AudioPlotter(Plotter):
    """Waveform envelope and spectrogram, with the acoustic events."""

    modality = "audio"
    description = ("waveform min/max envelope and spectrogram (dB, 0–fs/2); motion spans, "
                   "breathing rates and blinks from the events")

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> AudioSummary:
        """Stream ``chunks`` (``audio``) into a bounded summary (the channels are averaged;
        ``channels`` is accepted for the common interface and ignored).

        Raises
        ------
        PlotInputError
            No sample in the range.
        """
        max_columns = check_columns(max_columns)
        env = spec = None
        fs = 0.0
        scan = ChunkScan(start_s, end_s)
        carry = np.zeros(0)
        carry_t = 0.0
        nfft = 0
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr)
            if env is None:
                fs = float(fr.fs_hz or 0.0)
                if fs <= 0:
                    raise PlotInputError(f"{fr.source}: audio without a sample rate")
                nfft = _frame_len(fs)
                env = initial_binner(2 * max_columns, 1, start_s, end_s, minmax=True)
                spec = initial_binner(2 * max_columns, N_FREQ, start_s, end_s)
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            x = np.asarray(fr.data, np.float64)
            x = x.mean(axis=1) if x.ndim > 1 else x
            env.add(fr.times_s, x[:, None])
            if not len(carry):
                carry_t = float(fr.times_s[0])
            carry = np.concatenate([carry, x])
            n = len(carry) // nfft
            if n:
                seg = carry[: n * nfft].reshape(n, nfft) * np.hanning(nfft)[None, :]
                p = np.abs(np.fft.rfft(seg, axis=1))[:, : nfft // 2] ** 2
                p = p.reshape(n, N_FREQ, -1).mean(axis=2) if nfft // 2 >= N_FREQ else \
                    np.repeat(p, N_FREQ // (nfft // 2), axis=1)
                t = carry_t + (np.arange(n) + 0.5) * nfft / fs
                spec.add(t, p)
                carry = carry[n * nfft:]
                carry_t += n * nfft / fs
        if env is None or env.n_rows == 0:
            raise PlotInputError(f"{scan.source or 'recording'}: no audio samples in the range")
        t0, t1, cols = scan.columns(env, max_columns)
        span = max(t1 - t0, 1e-9)
        if spec is not None and spec.n_rows:
            scols = spec.columns(n_output_columns(spec, max_columns, span, rows_per_column=2),
                                 span)
            sp, spec_edges = scols["mean"], scols["edges_s"]
        else:
            sp, spec_edges = np.full((1, N_FREQ), np.nan), cols["edges_s"][[0, -1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            spec_db = 10 * np.log10(np.maximum(sp, 1e-20))
        return AudioSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], env.n_rows),
            fs_hz=fs, env_min=cols["min"][:, 0], env_max=cols["max"][:, 0], spec_db=spec_db,
            spec_edges_s=spec_edges)

    def draw(self, summary: AudioSummary, events: Sequence[dict[str, Any]], fig: Any) -> None:
        """Envelope on top, spectrogram below, events on both."""
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 3])
        ax_w = fig.add_subplot(gs[0])
        ax_s = fig.add_subplot(gs[1], sharex=ax_w)
        fig.suptitle(summary.title())
        t = summary.times_s
        ax_w.fill_between(t, summary.env_min, summary.env_max, step="mid", color="C0", lw=0)
        ax_w.set_ylabel("amplitude\n(full scale)")
        ax_w.tick_params(labelbottom=False)
        spec = summary.spec_db
        finite = spec[np.isfinite(spec)] if spec is not None else np.zeros(0)
        if finite.size:
            lo, hi = np.percentile(finite, [5, 99.5])
            ax_s.imshow(spec.T, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                        extent=(summary.spec_edges_s[0], summary.spec_edges_s[-1], 0,
                                summary.fs_hz / 2000.0), interpolation="nearest")
        ax_s.set_ylabel("frequency (kHz)")
        ax_s.set_xlabel("time (s)")
        probe = summary.meta.get("probe")
        if probe:
            ax_w.set_title(f"probe: {probe.get('type')}", loc="right", fontsize=9)
        self._events(summary, events, ax_w, ax_s)

    @staticmethod
    def _events(summary: AudioSummary, events: Sequence[dict[str, Any]], ax_w: Any,
                ax_s: Any) -> None:
        on_at: float | None = None
        for ev in events_in(events, summary.start_s, summary.end_s):
            t = event_time(ev)
            typ = ev.get("type")
            if typ == "motion":
                if ev.get("value") in (1, True):
                    on_at = t
                elif on_at is not None or ev.get("duration_s"):
                    start = on_at if on_at is not None else t - float(ev["duration_s"])
                    for ax in (ax_w, ax_s):
                        ax.axvspan(start, t, color="C2", alpha=0.15, lw=0)
                    on_at = None
            elif typ == "breathing_rate":
                ax_w.annotate(f"{ev.get('value')}", (t, 1.0), xycoords=("data", "axes fraction"),
                              fontsize=7, ha="right", va="top", color="C3")
            elif typ == "blink":
                for ax in (ax_w, ax_s):
                    ax.axvline(t, color="C1", lw=0.8, alpha=0.8)
        if on_at is not None:
            for ax in (ax_w, ax_s):
                ax.axvspan(on_at, summary.end_s, color="C2", alpha=0.15, lw=0)
