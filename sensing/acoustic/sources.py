"""Live sound card (``sound_card`` source type): full-duplex play-and-record on ONE
``sounddevice.Stream``, so the played probe and the recorded audio share one clock.

The probe (:class:`~sensing.acoustic.probe.Probe`: FMCW chirps or CW tones, or none) is
synthesised in the audio callback from the absolute sample index (phase-continuous across
blocks) and written to every output channel; the input block is copied to a bounded queue
that :meth:`SoundCardSource.chunks` drains into ``audio`` :class:`~sensing.frames.Frames`
(the same chunks a WAV replay gives). The callback's status flags (input overflow,
output underflow …) and blocks dropped because the queue was full are counted in
:attr:`SoundCardSource.counters` and in every chunk's ``meta["xruns"]``.

TX/RX alignment: output sample ``n`` leaves the DAC at ``outputBufferDacTime`` and input
sample ``n`` entered the ADC at ``inputBufferAdcTime``; their difference (from the first
callback, ``meta["tx_lead_s"]``) is when the probe's sample 0 appears in the recording,
and is stored as the recorded probe's ``start_s`` (the sonar refines it by
synchronising to the direct path).

sounddevice (and PortAudio) are imported only when a source opens; without PortAudio, or
without a matching device, opening raises :class:`~sensing.errors.SourceUnavailableError`
with one clear message (the agent's supervisor retries with backoff).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

from sensing.acoustic.probe import Probe, probe_from_json, probe_to_json
from sensing.errors import RejectLog, SourceUnavailableError
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES

__all__ = ["SoundCardParams", "SoundCardSource", "DuplexCallback", "import_sounddevice",
           "probe_from_options"]

#: Callback status flags counted (sounddevice.CallbackFlags attribute names).
STATUS_FLAGS = ("input_overflow", "input_underflow", "output_overflow", "output_underflow",
                "priming_output")


class SoundCardParams(Params):
    """Options of a ``sound_card`` source (and of ``ambisense record-audio``)."""

    device: str | int | None = param(
        None, doc="input device: index or part of its name (default: the system default)")
    output_device: str | int | None = param(
        None, doc="output device for the probe (default: the same as device)")
    samplerate_hz: int = param(48000, unit="Hz", ge=2000, le=192000, doc="sample rate")
    channels: int = param(1, ge=1, le=32, doc="input channels recorded")
    output_channels: int = param(1, ge=1, le=32, doc="output channels the probe is played on")
    blocksize: int = param(1024, ge=0, le=65536,
                           doc="frames per callback (0: let PortAudio choose)")
    latency: Literal["low", "high"] | float = param(
        "high", doc="PortAudio latency: \"low\", \"high\" or seconds")
    queue_s: float = param(5.0, unit="s", gt=0, le=600,
                           doc="audio buffered for the pipelines at most (then blocks drop)")
    probe: Literal["none", "fmcw", "cw"] = param("none", doc="what the speaker plays")
    f0_hz: float = param(18000.0, unit="Hz", gt=0, doc="FMCW sweep start")
    f1_hz: float = param(22000.0, unit="Hz", gt=0, doc="FMCW sweep end")
    chirp_s: float = param(0.01, unit="s", gt=0, le=10, doc="FMCW sweep duration")
    period_s: float = param(0.01, unit="s", gt=0, le=10, doc="FMCW chirp period (>= chirp_s)")
    tones_hz: list[float] = param([20000.0], unit="Hz", doc="CW tones")
    amplitude: float = param(0.3, gt=0, le=1, doc="probe peak amplitude, fraction of full scale")
    window: Literal["none", "hann", "tukey"] = param("none", doc="FMCW chirp window")


def probe_from_options(p: SoundCardParams, start_s: float = 0.0) -> Probe | None:
    """The :class:`Probe` the options describe (None for ``probe = "none"``).

    Raises
    ------
    sensing.acoustic.probe.ProbeError
        Inconsistent fields, or the probe reaches Nyquist at ``samplerate_hz``.
    """
    if p.probe == "none":
        return None
    obj: dict[str, Any] = {"type": p.probe, "amplitude": p.amplitude,
                           "start_s": max(0.0, float(start_s))}
    if p.probe == "fmcw":
        obj.update(f0_hz=p.f0_hz, f1_hz=p.f1_hz, chirp_s=p.chirp_s, period_s=p.period_s,
                   window=p.window)
    else:
        obj["tones_hz"] = list(p.tones_hz)
    probe = probe_from_json(obj, where="sound_card probe")
    probe.check_rate(p.samplerate_hz, "sound_card probe")
    return probe


def import_sounddevice() -> Any:
    """``import sounddevice``, or :class:`SourceUnavailableError` with one clear message."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise SourceUnavailableError(
            f"sound card unavailable: {exc} (install PortAudio, e.g. `apt install "
            f"libportaudio2`, and the Python package `sounddevice`)") from None
    return sounddevice


class DuplexCallback:
    """The audio callback of a full-duplex stream (testable without a device).

    ``callback(indata, outdata, frames, time, status)`` plays the probe's next ``frames``
    samples on every output channel, queues a copy of the input block with its absolute
    sample index, and counts the status flags and the blocks dropped on a full queue.

    Parameters
    ----------
    probe : Probe or None
        What to play (None: silence).
    fs_hz : float
        Sample rate (Hz).
    max_blocks : int
        Queue length (blocks); a block arriving on a full queue is dropped and counted.
    """

    def __init__(self, probe: Probe | None, fs_hz: float, max_blocks: int = 256) -> None:
        self.probe = probe
        self.fs_hz = float(fs_hz)
        self.queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=max(1, max_blocks))
        self.n = 0  # absolute index of the next sample
        self.counters: dict[str, int] = {f: 0 for f in STATUS_FLAGS}
        self.counters.update(dropped_blocks=0, dropped_samples=0, callbacks=0)
        self.tx_lead_s: float | None = None
        self._lock = threading.Lock()

    def __call__(self, indata: np.ndarray, outdata: np.ndarray | None, frames: int,
                 time: Any, status: Any) -> None:
        start = self.n
        self.n += frames
        with self._lock:
            self.counters["callbacks"] += 1
            for flag in STATUS_FLAGS:
                if status is not None and getattr(status, flag, False):
                    self.counters[flag] += 1
        if self.tx_lead_s is None and time is not None:
            dac = getattr(time, "outputBufferDacTime", 0.0) or 0.0
            adc = getattr(time, "inputBufferAdcTime", 0.0) or 0.0
            if dac and adc:
                self.tx_lead_s = float(dac - adc)
        if outdata is not None:
            if self.probe is None:
                outdata.fill(0)
            else:
                outdata[:] = self.probe.waveform(self.fs_hz, start, frames)[:, None]
        try:
            self.queue.put_nowait((start, np.array(indata, dtype=np.float32, copy=True)))
        except queue.Full:
            with self._lock:
                self.counters["dropped_blocks"] += 1
                self.counters["dropped_samples"] += frames

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counters)


def _resolve_device(sd: Any, device: str | int | None, kind: str, channels: int) -> Any:
    """``device`` checked against the devices PortAudio lists (SourceUnavailableError with
    the list when it does not match or lacks channels)."""
    try:
        info = sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError) as exc:
        try:
            listing = "; ".join(f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()))
        except Exception:  # noqa: BLE001 - the listing is only a hint
            listing = "(cannot list devices)"
        raise SourceUnavailableError(f"sound card: no {kind} device {device!r} ({exc}); "
                                     f"devices: {listing or 'none'}") from None
    have = info.get(f"max_{kind}_channels", 0)
    if have < channels:
        raise SourceUnavailableError(f"sound card: {kind} device {info.get('name')!r} has "
                                     f"{have} {kind} channels, {channels} requested")
    return device if device is not None else info.get("index", device)


@SOURCES.register("sound_card")
class SoundCardSource:
    """A sound card recording (and optionally playing a probe) live.

    Parameters
    ----------
    params : SoundCardParams
        Options.
    name : str
        Source name put in every chunk.

    Attributes
    ----------
    rejects : RejectLog
        Always empty (audio blocks have no malformed records); over/underruns are in
        :attr:`counters`.
    counters : dict
        Callback status flags seen (``input_overflow``, ``output_underflow`` …),
        ``dropped_blocks``/``dropped_samples`` (queue full: the pipelines fell behind),
        ``callbacks``.
    probe : Probe or None
        The played probe, its ``start_s`` the measured TX lead once streaming.
    """

    Params = SoundCardParams
    modality = "audio"
    live = True
    description = ("sound card via sounddevice: full-duplex play (FMCW/CW probe) and "
                   "record on one stream")

    @classmethod
    def from_params(cls, params: SoundCardParams, name: str) -> SoundCardSource:
        """An opened source (raises SourceUnavailableError without PortAudio or device)."""
        src = cls(params, name)
        src.open()
        return src

    def __init__(self, params: SoundCardParams, name: str = "sound_card") -> None:
        self.params = params
        self.source = name
        self.rejects = RejectLog()
        self.probe = probe_from_options(params)
        blocks = max(1, int(params.queue_s * params.samplerate_hz
                            / max(params.blocksize or 1024, 1)))
        self.callback = DuplexCallback(self.probe, params.samplerate_hz, blocks)
        self._stream: Any = None
        self._closed = False

    @property
    def counters(self) -> dict[str, int]:
        """Over/underrun and drop counters (see the class docstring)."""
        return self.callback.snapshot()

    def open(self) -> None:
        """Open (not start) the duplex stream.

        Raises
        ------
        SourceUnavailableError
            No PortAudio, no such device, or the device refuses the settings.
        """
        if self._stream is not None:
            return
        sd = import_sounddevice()
        p = self.params
        dev_in = _resolve_device(sd, p.device, "input", p.channels)
        out_dev = p.output_device if p.output_device is not None else p.device
        play = self.probe is not None
        try:
            if play:
                dev_out = _resolve_device(sd, out_dev, "output", p.output_channels)
                self._stream = sd.Stream(samplerate=p.samplerate_hz, blocksize=p.blocksize,
                                         device=(dev_in, dev_out),
                                         channels=(p.channels, p.output_channels),
                                         dtype="float32", latency=p.latency,
                                         callback=self.callback)
            else:
                cb = self.callback
                self._stream = sd.InputStream(
                    samplerate=p.samplerate_hz, blocksize=p.blocksize, device=dev_in,
                    channels=p.channels, dtype="float32", latency=p.latency,
                    callback=lambda i, f, t, s: cb(i, None, f, t, s))
        except (sd.PortAudioError, ValueError) as exc:
            raise SourceUnavailableError(f"sound card: cannot open {p.samplerate_hz} Hz "
                                         f"stream on {p.device!r}: {exc}") from None

    def close(self) -> None:
        """Stop streaming (callable from another thread)."""
        self._closed = True

    def _release(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a failed device must not raise
                pass
            self._stream = None

    def latency_s(self) -> Any:
        """The stream's (input, output) latency in seconds as PortAudio reports it."""
        return None if self._stream is None else self._stream.latency

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield one chunk per callback block until :meth:`close` or ``stop()``."""
        self._closed = False
        self.open()
        sd = import_sounddevice()
        p = self.params
        names = tuple(f"ch{i}" for i in range(p.channels))
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            self._release()
            raise SourceUnavailableError(f"sound card: cannot start the stream: {exc}") from None
        meta: dict[str, Any] = {"format": "sound_card", "live": True, "bits": 32,
                                "sample_format": "float",
                                "probe": probe_to_json(self.probe) if self.probe else None}
        try:
            while not self._closed and not (stop is not None and stop()):
                try:
                    start, block = self.callback.queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stream is not None and not self._stream.active:
                        raise SourceUnavailableError("sound card: the stream stopped "
                                                     "(device unplugged?)") from None
                    continue
                lead = self.callback.tx_lead_s
                if lead is not None and self.probe is not None and "tx_lead_s" not in meta:
                    meta = {**meta, "tx_lead_s": lead,
                            "probe": probe_to_json(self.probe.replace(start_s=max(0.0, lead)))}
                times = (start + np.arange(len(block))) / p.samplerate_hz
                yield Frames(block, times, float(p.samplerate_hz), "audio", self.source,
                             channel_names=names, meta={**meta, "xruns": self.counters})
        finally:
            self._release()
