"""Default plots of LoRa captures (``ambisense plot``).

* ``lora_iq`` (SigMF / raw IQ): received power per channel over time and a spectrogram of
  channel 0 (−fs/2 … +fs/2), with the decoded packets and the sensing events.
* ``lora_packets`` (module packet logs): RSSI, SNR and frequency error per packet, with the
  motion/presence events.
"""

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

#: Frequency rows of the IQ spectrogram (FFT length of each spectrogram frame).
N_FREQ = 128


@dataclass
class IqSummary(Summary):
    """Per column: mean power per channel (dB full scale) and the mean power spectrum of
    channel 0 (``N_FREQ`` rows, −fs/2 … +fs/2, dB)."""

    fs_hz: float = 0.0
    channel_names: tuple[str, ...] = ()
    power_db: np.ndarray | None = None  # (columns, channels)
    spec_db: np.ndarray | None = None  # (spectrogram columns, N_FREQ)
    spec_edges_s: np.ndarray | None = None


@PLOTTERS.register("lora_iq")
class LoraIqPlotter(Plotter):
    """Power per channel and a spectrogram, with the LoRa events."""

    modality = "lora_iq"
    description = ("received power per channel (dB) and the spectrogram of channel 0 "
                   "(−fs/2 … +fs/2); decoded packets and sensing events")

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> IqSummary:
        """Stream ``chunks`` (``lora_iq``) into a bounded summary (every channel's power;
        the spectrogram of the first channel; ``channels`` is accepted and ignored).

        Raises
        ------
        PlotInputError
            No sample in the range, or no sample rate.
        """
        max_columns = check_columns(max_columns)
        pw = spec = None
        fs, names = 0.0, ()
        scan = ChunkScan(start_s, end_s)
        carry = np.zeros(0, np.complex64)
        carry_t = 0.0
        window = np.hanning(N_FREQ)
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr, {k: v for k, v in fr.meta.items() if k != "annotations"})
            if pw is None:
                fs = float(fr.fs_hz or 0.0)
                if fs <= 0:
                    raise PlotInputError(f"{fr.source}: IQ without a sample rate")
                names = tuple(fr.channel_names or
                              (f"ch{i}" for i in range(np.asarray(fr.data).shape[1])))
                pw = initial_binner(2 * max_columns, len(names), start_s, end_s)
                spec = initial_binner(2 * max_columns, N_FREQ, start_s, end_s)
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            x = np.asarray(fr.data).reshape(len(fr), -1)
            pw.add(fr.times_s, np.abs(x) ** 2)
            if not len(carry):
                carry_t = float(fr.times_s[0])
            carry = np.concatenate([carry, x[:, 0].astype(np.complex64)])
            n = len(carry) // N_FREQ
            if n:
                seg = carry[: n * N_FREQ].reshape(n, N_FREQ) * window[None, :]
                p = np.abs(np.fft.fftshift(np.fft.fft(seg, axis=1), axes=1)) ** 2
                spec.add(carry_t + (np.arange(n) + 0.5) * N_FREQ / fs, p)
                carry = carry[n * N_FREQ:]
                carry_t += n * N_FREQ / fs
        if pw is None or pw.n_rows == 0:
            raise PlotInputError(f"{scan.source or 'recording'}: no IQ samples in the range")
        t0, t1, cols = scan.columns(pw, max_columns)
        span = max(t1 - t0, 1e-9)
        if spec is not None and spec.n_rows:
            scols = spec.columns(n_output_columns(spec, max_columns, span, rows_per_column=2),
                                 span)
            sp, spec_edges = scols["mean"], scols["edges_s"]
        else:
            sp, spec_edges = np.full((1, N_FREQ), np.nan), cols["edges_s"][[0, -1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            power_db = 10 * np.log10(np.maximum(cols["mean"], 1e-20))
            spec_db = 10 * np.log10(np.maximum(sp, 1e-20))
        return IqSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], pw.n_rows),
            fs_hz=fs, channel_names=names, power_db=power_db, spec_db=spec_db, spec_edges_s=spec_edges)

    def draw(self, summary: IqSummary, events: Sequence[dict[str, Any]], fig: Any) -> None:
        """Power on top, spectrogram below; packets as spans, other events as lines."""
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 3])
        ax_p = fig.add_subplot(gs[0])
        ax_s = fig.add_subplot(gs[1], sharex=ax_p)
        fig.suptitle(summary.title())
        t = summary.times_s
        for i, name in enumerate(summary.channel_names):
            ax_p.plot(t, summary.power_db[:, i], lw=0.8, label=name)
        ax_p.set_ylabel("power\n(dB FS)")
        if len(summary.channel_names) > 1:
            ax_p.legend(loc="upper right", fontsize="small")
        ax_p.tick_params(labelbottom=False)
        spec = summary.spec_db
        finite = spec[np.isfinite(spec)] if spec is not None else np.zeros(0)
        if finite.size:
            lo, hi = np.percentile(finite, [5, 99.5])
            half = summary.fs_hz / 2000.0
            ax_s.imshow(spec.T, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                        extent=(summary.spec_edges_s[0], summary.spec_edges_s[-1], -half, half),
                        interpolation="nearest")
        ax_s.set_ylabel("frequency (kHz)")
        ax_s.set_xlabel("time (s)")
        for ev in events_in(events, summary.start_s, summary.end_s):
            t0 = event_time(ev)
            if ev.get("type") == "lora_packet":
                ax_p.axvline(t0, color="C2" if ev.get("crc_ok") else "C3", lw=0.8)
            elif t0 is not None:
                ax_s.axvline(t0, color="white", lw=0.6, alpha=0.7)


@dataclass
class PacketLogSummary(Summary):
    """Per column: mean RSSI (dBm), SNR (dB) and frequency error (Hz) of the packets."""

    mean: np.ndarray | None = None  # (columns, 3)
    channel_names: tuple[str, ...] = ()


@PLOTTERS.register("lora_packets")
class LoraPacketLogPlotter(Plotter):
    """RSSI, SNR and frequency error per packet, with the events."""

    modality = "lora_packets"
    description = "RSSI, SNR and frequency error per received packet; motion events"

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> PacketLogSummary:
        """Stream ``chunks`` (``lora_packets``) into a bounded summary.

        Raises
        ------
        PlotInputError
            No packet in the range.
        """
        max_columns = check_columns(max_columns)
        binner = None
        names: tuple[str, ...] = ()
        scan = ChunkScan(start_s, end_s)
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr)
            if binner is None:
                names = tuple(fr.channel_names or ("rssi_db", "snr_db", "freq_error_hz"))
                binner = initial_binner(2 * max_columns, len(names), start_s, end_s)
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            binner.add(fr.times_s, np.asarray(fr.data, np.float64).reshape(len(fr), -1))
        if binner is None or binner.n_rows == 0:
            raise PlotInputError(f"{scan.source or 'log'}: no packets in the range")
        t0, t1, cols = scan.columns(binner, max_columns)
        return PacketLogSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], binner.n_rows),
            mean=cols["mean"], channel_names=names)

    def draw(self, summary: PacketLogSummary, events: Sequence[dict[str, Any]],
             fig: Any) -> None:
        """One panel per packet quantity; motion spans shaded."""
        n = len(summary.channel_names)
        axes = [fig.add_subplot(n, 1, 1)]
        axes += [fig.add_subplot(n, 1, i + 1, sharex=axes[0]) for i in range(1, n)]
        fig.suptitle(summary.title())
        t = summary.times_s
        units = {"rssi_db": "RSSI (dBm)", "snr_db": "SNR (dB)", "freq_error_hz": "freq. error (Hz)"}
        for i, (ax, name) in enumerate(zip(axes, summary.channel_names, strict=True)):
            ax.plot(t, summary.mean[:, i], ".", ms=2, color=f"C{i}")
            ax.set_ylabel(units.get(name, name))
            if i < n - 1:
                ax.tick_params(labelbottom=False)
        axes[-1].set_xlabel("time (s)")
        on = None
        for ev in sorted(events_in(events, summary.start_s, summary.end_s), key=lambda e: event_time(e) or 0.0):
            if ev.get("type") != "motion":
                continue
            if ev.get("value") in (1, True) and on is None:
                on = event_time(ev)
            elif ev.get("value") in (0, False) and on is not None:
                for ax in axes:
                    ax.axvspan(on, event_time(ev), color="C3", alpha=0.15, lw=0)
                on = None
