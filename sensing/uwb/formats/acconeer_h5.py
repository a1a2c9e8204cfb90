"""Acconeer pulsed coherent radar (60 GHz) baseband frames from HDF5, as the vendor's tools
write them (``acconeer-exptool``), read with h5py, a frame range per chunk.

**A121** (``generation`` = ``a121``): frames at
``sessions/session_0/group_0/entry_0/result/frame``, shape ``(n_frames, sweeps_per_frame,
n_points)``, a compound of int16 ``real``/``imag``; per frame ``tick`` (device ticks,
``server_info.ticks_per_second``), ``data_saturated``, ``temperature``; the sensor config
is the JSON ``sessions/session_0/session_config`` (per subsweep ``start_point``,
``step_length``, ``num_points``, ``profile``, ``prf``, ``hwaas``; ``frame_rate``,
``sweeps_per_frame``), the entry's ``metadata`` JSON gives ``base_step_length_m`` (2.5 mm)
and the subsweep offsets. Range of point ``k`` of a subsweep:
``(start_point + k * step_length) * base_step_length_m``. The **sweeps of a frame are
averaged coherently** (mean over the sweep axis: 16 sweeps → one row, +12 dB SNR for a
reflector that does not move within the frame, ~0.8 s at 20 Hz × 16 sweeps at the
sweep rate), so a frame is one row ``(n_points,)``; subsweeps are concatenated along the
points (``meta["range_m"]`` per point). Only ``group_0/entry_0`` is read (the first
sensor); other entries are listed in ``meta["entries"]``.

**A111** (older exptool; ``data`` + ``sensor_config_dump``): IQ mode ``data`` shape
``(n_sweeps, n_sensors, n_points)`` complex, ``sample_times`` (s), ``session_info``
(``range_start_m``, ``step_length_m``, ``data_length``) and the config JSON
(``update_rate`` Hz, ``profile``, ``hw_accelerated_average_samples``, ``range_interval``).
One sweep is one row; the first sensor is read. Envelope/power-bins files raise a clear
:class:`~sensing.errors.CaptureFormatError` (no phase: not baseband frames).

Frames: ``modality="radar"``, ``data`` complex64 ``(n_frames, n_points)``, ``times_s`` from
the device ticks (A121) or ``sample_times`` (A111) relative to the first frame, ``fs_hz``
the configured frame rate, ``fields`` ``data_saturated`` (bool) and, for A121,
``temperature`` (°C), ``meta``: ``format``, ``generation`` (``a121``/``a111``),
``range_m`` (list, m per point), ``frame_rate_hz``, ``sweeps_per_frame``, ``profile``,
``sensor_config`` (the file's JSON, parsed), ``app_config`` (the vendor app's config when
the file has one, e.g. ``algo/ref_app_config``), ``recorded`` (the file's timestamp string),
``wavelength_m`` (4.96 mm at 60.5 GHz).

The vendor's **algorithm outputs** (``*.vendor-output.h5``: ``breathing_rate`` per frame,
or ``f_est`` per sweep) are not captures: :class:`AcconeerH5Reader` does not claim them
(they stay "an HDF5 file" to ``ambisense info``); :func:`read_vendor_output` reads them
for comparisons (``benchmarks/eval_uwb_real.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from sensing.errors import CaptureFormatError
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
A121_ENTRY = "sessions/session_0/group_0/entry_0"
#: Centre wavelength of the 60.5 GHz Acconeer radars (m).
WAVELENGTH_M = 299_792_458.0 / 60.5e9


def _json(node: Any) -> Any:
    raw = node[()]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _text(f: Any, key: str) -> str | None:
    if key not in f:
        return None
    raw = f[key][()]
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _kind(f: Any) -> str | None:
    """``"a121"``, ``"a111"`` or None for an open h5py file."""
    if f"{A121_ENTRY}/result/frame" in f:
        return "a121"
    if "data" in f and "sensor_config_dump" in f:
        return "a111"
    return None


@FORMATS.register("acconeer_h5")
class AcconeerH5Reader(CaptureReader):
    """Acconeer A121/A111 radar recordings (HDF5 from acconeer-exptool); see the module
    docstring for the layout, the sweep averaging and the metadata keys."""

    name = "acconeer_h5"
    modality = "radar"
    extensions = (".h5", ".hdf5")
    description = "Acconeer A121/A111 pulsed-radar baseband frames (exptool HDF5; h5py)"

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if not head.startswith(HDF5_MAGIC):
            return False
        try:
            import h5py

            with h5py.File(path, "r") as f:
                return _kind(f) is not None
        except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
            return False

    def _open(self):
        try:
            import h5py
        except ImportError as exc:  # pragma: no cover - h5py is a dependency here
            raise CaptureFormatError(self.path, "file", "h5py installed to read HDF5",
                                     str(exc)) from None
        try:
            return h5py.File(self.path, "r")
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt HDF5
            raise CaptureFormatError(self.path, "file", "a readable HDF5 file",
                                     f"{type(exc).__name__}: {exc}") from None

    def chunks(self) -> Iterator[Frames]:
        f = self._open()
        try:
            kind = _kind(f)
            if kind == "a121":
                yield from self._a121(f)
            elif kind == "a111":
                yield from self._a111(f)
            else:
                raise CaptureFormatError(self.path, "file", "an Acconeer A121 or A111 recording",
                                         f"HDF5 with keys {sorted(f.keys())[:8]}")
        except CaptureFormatError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise CaptureFormatError(self.path, "file", "readable Acconeer radar datasets",
                                     f"{type(exc).__name__}: {exc}") from None
        finally:
            f.close()
        self.bytes_read = os.path.getsize(self.path)

    # -- A121 ----------------------------------------------------------------------------
    def _a121(self, f: Any) -> Iterator[Frames]:
        entry = f[A121_ENTRY]
        res = entry["result"]
        frame = res["frame"]
        if frame.ndim != 3 or frame.dtype.names is None or not {"real", "imag"} <= set(frame.dtype.names):
            raise CaptureFormatError(self.path, f"{A121_ENTRY}/result/frame",
                                     "(frames, sweeps, points) of int16 real/imag",
                                     f"{frame.shape} {frame.dtype}")
        cfg = _json(f["sessions/session_0/session_config"])
        meta_e = _json(entry["metadata"]) if "metadata" in entry else {}
        server = _json(f["server_info"]) if "server_info" in f else {}
        sensor_id = int(entry["sensor_id"][()]) if "sensor_id" in entry else 1
        try:
            group = cfg["groups"][0]
            scfg = group.get(str(sensor_id)) or next(iter(group.values()))
        except (KeyError, IndexError, TypeError, StopIteration, AttributeError):
            raise CaptureFormatError(self.path, "sessions/session_0/session_config",
                                     "a session config with groups[0][sensor]",
                                     repr(cfg)[:80]) from None
        base = float(meta_e.get("base_step_length_m", 0.0025)) if isinstance(meta_e, dict) else 0.0025
        ranges = []
        for sub in scfg.get("subsweeps", []):
            k = np.arange(int(sub["num_points"]))
            ranges.append((int(sub["start_point"]) + k * int(sub["step_length"])) * base)
        range_m = np.concatenate(ranges) if ranges else np.arange(frame.shape[2]) * base
        if len(range_m) != frame.shape[2]:
            raise CaptureFormatError(self.path, f"{A121_ENTRY}/result/frame",
                                     f"{len(range_m)} points per sweep (from the config)",
                                     f"{frame.shape[2]}")
        rate = scfg.get("frame_rate")
        tps = float((server or {}).get("ticks_per_second") or 1e6) if isinstance(server, dict) else 1e6
        n = frame.shape[0]
        ticks = res["tick"] if "tick" in res else None
        sat = res["data_saturated"] if "data_saturated" in res else None
        temp = res["temperature"] if "temperature" in res else None
        entries = [f"{g}/{e}" for g in f["sessions/session_0"] if g.startswith("group")
                   for e in f[f"sessions/session_0/{g}"]]
        subs = scfg.get("subsweeps", [{}])
        meta = {
            "format": self.name, "generation": "a121", "range_m": range_m.tolist(),
            "frame_rate_hz": rate, "sweeps_per_frame": int(frame.shape[1]),
            "sweeps": "mean", "profile": subs[0].get("profile"), "prf": subs[0].get("prf"),
            "hwaas": subs[0].get("hwaas"), "sensor_config": scfg, "sensor_id": sensor_id,
            "app_config": _json(f["algo/ref_app_config"]) if "algo/ref_app_config" in f else None,
            "recorded": _text(f, "timestamp"), "wavelength_m": WAVELENGTH_M,
            "entries": entries, "lib_version": _text(f, "lib_version"),
        }
        t_first: float | None = None
        last_t = -np.inf
        for a in range(0, n, self.chunk_size):
            b = min(a + self.chunk_size, n)
            raw = frame[a:b]
            x = (raw["real"].astype(np.float32) + 1j * raw["imag"].astype(np.float32))
            data = x.mean(axis=1).astype(np.complex64)
            if ticks is not None:
                tk = np.asarray(ticks[a:b], np.float64) / tps
            else:
                tk = np.arange(a, b) / float(rate or 1.0)
            if t_first is None:
                t_first = float(tk[0])
            t = tk - t_first
            t = np.maximum.accumulate(np.maximum(t, last_t))
            last_t = float(t[-1])
            fields = {"data_saturated": (np.asarray(sat[a:b], bool) if sat is not None
                                         else np.zeros(b - a, bool))}
            if temp is not None:
                fields["temperature"] = np.asarray(temp[a:b], np.float32)
            self.bytes_read = int(os.path.getsize(self.path) * b / max(n, 1))
            yield Frames(data=data, times_s=t, fs_hz=float(rate) if rate else None,
                         modality="radar", source=self.source, fields=fields, meta=meta)

    # -- A111 ----------------------------------------------------------------------------
    def _a111(self, f: Any) -> Iterator[Frames]:
        data = f["data"]
        mode = (_text(f, "mode") or "").lower()
        cfg = _json(f["sensor_config_dump"])
        if mode and mode != "iq" or not np.iscomplexobj(np.empty(0, data.dtype)):
            raise CaptureFormatError(self.path, "data", "A111 IQ-mode (complex) sweeps",
                                     f"mode {mode or '?'} with {data.dtype} data")
        if data.ndim != 3:
            raise CaptureFormatError(self.path, "data", "(sweeps, sensors, points)",
                                     f"shape {data.shape}")
        info = _json(f["session_info"]) if "session_info" in f else {}
        n, _, m = data.shape
        start = float(info.get("range_start_m", (cfg.get("range_interval") or [0])[0]))
        step = float(info.get("step_length_m", 0.000484))
        range_m = start + np.arange(m) * step
        rate = cfg.get("update_rate") if isinstance(cfg, dict) else None
        times = f["sample_times"] if "sample_times" in f else None
        meta = {
            "format": self.name, "generation": "a111", "range_m": range_m.tolist(),
            "frame_rate_hz": rate, "sweeps_per_frame": 1, "sweeps": "one per row",
            "profile": cfg.get("profile"), "hwaas": cfg.get("hw_accelerated_average_samples"),
            "sensor_config": cfg, "session_info": info, "mode": mode or "iq",
            "processing_config": (_json(f["legacy_processing_config_dump"])
                                  if "legacy_processing_config_dump" in f else None),
            "recorded": _text(f, "timestamp"), "wavelength_m": WAVELENGTH_M,
            "lib_version": _text(f, "lib_version"),
        }
        t_first: float | None = None
        last_t = -np.inf
        for a in range(0, n, self.chunk_size):
            b = min(a + self.chunk_size, n)
            x = np.asarray(data[a:b, 0, :]).astype(np.complex64)
            tk = (np.asarray(times[a:b], np.float64) if times is not None
                  else np.arange(a, b) / float(rate or 1.0))
            if t_first is None:
                t_first = float(tk[0])
            t = np.maximum.accumulate(np.maximum(tk - t_first, last_t))
            last_t = float(t[-1])
            self.bytes_read = int(os.path.getsize(self.path) * b / max(n, 1))
            yield Frames(data=x, times_s=t, fs_hz=float(rate) if rate else None,
                         modality="radar", source=self.source,
                         fields={"data_saturated": np.zeros(b - a, bool)}, meta=meta)


def read_vendor_output(path: str | os.PathLike) -> dict[str, Any]:
    """The vendor algorithm's output beside a recording (``*.vendor-output.h5``).

    Returns
    -------
    dict
        A121 breathing app: ``breathing_rate_bpm`` (per frame, NaN before an estimate),
        ``app_state``; A111 sleep breathing: ``f_est_hz``, ``f_dft_est_hz``, ``snr`` per
        sweep and ``breathing_rate_bpm`` = 60 × ``f_est_hz``. Plus ``kind``.
    """
    import h5py

    with h5py.File(os.fspath(path), "r") as f:
        if "breathing_rate" in f:
            out = {"kind": "a121_breathing",
                   "breathing_rate_bpm": np.asarray(f["breathing_rate"][()], np.float64)}
            if "app_state" in f:
                out["app_state"] = np.asarray(f["app_state"][()])
            return out
        if "f_est" in f:
            fe = np.asarray(f["f_est"][()], np.float64)
            return {"kind": "a111_sleep_breathing", "f_est_hz": fe,
                    "f_dft_est_hz": np.asarray(f["f_dft_est"][()], np.float64)
                    if "f_dft_est" in f else None,
                    "snr": np.asarray(f["snr"][()], np.float64) if "snr" in f else None,
                    "breathing_rate_bpm": 60.0 * fe}
    raise ValueError(f"{path}: not an Acconeer vendor-output file (no breathing_rate/f_est)")
