"""Audio recordings: WAV (with an optional probe sidecar) and real-valued SigMF.

Both readers yield ``modality="audio"`` chunks: ``data`` float32 ``(n_samples,
n_channels)`` scaled to full scale ±1 (integers divided by 2^(bits−1); unsigned 8-bit
centred first; floats as stored), ``times_s`` the sample times from the first sample,
``fs_hz`` the sample rate, ``channel_names`` and ``meta`` = ``{"format": "wav" | "sigmf",
"probe": <the ambisense:probe JSON object or None>, "bits": …, "sample_format": "int" |
"float", "annotations": […] (SigMF)}``.

WAV
    RIFF/WAVE with a ``fmt `` chunk of format 1 (PCM: 8/16/24/32-bit), 3 (IEEE float:
    32/64-bit) or 0xFFFE (WAVE_FORMAT_EXTENSIBLE with the PCM or float sub-format; the
    channel mask names the channels, ``FL``, ``FR`` …). Chunks are walked in order (unknown
    ones skipped), the data chunk streamed in bounded blocks (never loaded whole). A data
    chunk shorter than its header says (a cut file), a size of 0 or 0xFFFFFFFF (a recorder
    that never finalised the header) or a trailing partial frame is one counted
    ``truncated`` reject; what is there is read. The probe, if any, is in ``NAME.wav.json``:
    ``{"ambisense:probe": {…}}`` (:mod:`sensing.acoustic.probe`).
SigMF
    ``NAME.sigmf-meta`` + ``NAME.sigmf-data`` with a real datatype (``rf32``, ``rf64``,
    ``ri32``, ``ri16``, ``ri8``, ``ru8`` …, little or big endian; SigMF has no 24-bit
    type), ``core:num_channels`` interleaved channels, the probe in the global object
    (``"ambisense:probe"``) and annotations as ground truth (``meta["annotations"]``: one
    dict per annotation with ``start_s``, ``duration_s``, ``sample_start``,
    ``sample_count``, ``label`` and its other fields without namespace). Complex
    datatypes (``cf32_le``, ``ci16_le``, ``cu8`` …: radio IQ) are not audio and are left
    to the other readers. Either file of the pair may be opened.

Writers beside them: :func:`write_wav` / :class:`WavWriter` (streaming) and
:func:`write_sigmf` / :class:`SigmfWriter` (streaming), which write exactly what the
readers read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, ClassVar

import numpy as np

from sensing.acoustic.probe import PROBE_KEY, Probe, ProbeError, probe_from_json, probe_to_json
from sensing.errors import CaptureFormatError, Reject, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

__all__ = ["WavReader", "SigmfAudioReader", "WavWriter", "SigmfWriter", "write_wav",
           "write_sigmf", "read_sidecar_probe", "sidecar_path", "WAV_SUBTYPES",
           "SIGMF_AUDIO_DATATYPES", "DEFAULT_CHUNK"]

#: Samples per chunk by default (~85 ms at 48 kHz).
DEFAULT_CHUNK = 4096

#: Format tags of the ``fmt `` chunk.
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
#: WAVE_FORMAT_EXTENSIBLE sub-format GUID tail (after the 2-byte format code).
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
#: Speaker positions of the channel mask bits (WAVE_FORMAT_EXTENSIBLE).
_SPEAKERS = ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC",
             "TFL", "TFC", "TFR", "TBL", "TBC", "TBR")
#: Chunks walked before the data chunk at most (a corrupt file cannot loop us forever).
_MAX_CHUNKS = 1024

#: ``write_wav`` subtypes: name → (format tag, bits, numpy dtype or None for 24-bit).
WAV_SUBTYPES: dict[str, tuple[int, int, str | None]] = {
    "int16": (_PCM, 16, "<i2"), "int24": (_PCM, 24, None), "int32": (_PCM, 32, "<i4"),
    "float32": (_FLOAT, 32, "<f4"),
}

#: SigMF real datatypes this reader takes (SigMF names; ``_le``/``_be`` suffix for > 8 bit).
SIGMF_AUDIO_DATATYPES = ("rf64", "rf32", "ri32", "ri16", "ri8", "ru32", "ru16", "ru8")


# ----------------------------------------------------------------------------- WAV header
@dataclass(frozen=True)
class WavLayout:
    """What the header of a WAV file says.

    Attributes
    ----------
    fs_hz : int
        Sample rate.
    n_channels : int
        Interleaved channels.
    bits : int
        Bits per sample (container size: 8, 16, 24, 32, 64).
    is_float : bool
        IEEE float samples (else integer PCM; 8-bit PCM is unsigned).
    data_offset : int
        Byte offset of the first sample.
    data_bytes : int
        Bytes of samples available in the file (at most what the header declares).
    declared_bytes : int
        Size the data chunk header declares (0 / 0xFFFFFFFF: unknown).
    channel_names : tuple of str
        ``FL``, ``FR`` … from an extensible channel mask, else ``ch0``, ``ch1`` ….
    """

    fs_hz: int
    n_channels: int
    bits: int
    is_float: bool
    data_offset: int
    data_bytes: int
    declared_bytes: int
    channel_names: tuple[str, ...]

    @property
    def block_align(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.n_channels * self.bits // 8

    @property
    def n_frames(self) -> int:
        """Whole frames available."""
        return self.data_bytes // self.block_align


def _fmt_kind(fmt: bytes) -> tuple[int, int, int, int, int] | None:
    """(format code 1/3, channels, rate, bits, channel mask) of a ``fmt `` chunk body, or
    None when it is not PCM/float/extensible-PCM/float."""
    if len(fmt) < 16:
        return None
    tag, ch, rate, _brate, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
    mask = 0
    if tag == _EXTENSIBLE:
        if len(fmt) < 40 or fmt[26:40] != _GUID_TAIL:
            return None
        valid_bits = struct.unpack("<H", fmt[18:20])[0]
        mask = struct.unpack("<I", fmt[20:24])[0]
        tag = struct.unpack("<H", fmt[24:26])[0]
        del valid_bits  # samples are scaled by their container size (bits)
    if tag == _PCM and bits in (8, 16, 24, 32):
        return tag, ch, rate, bits, mask
    if tag == _FLOAT and bits in (32, 64):
        return tag, ch, rate, bits, mask
    return None


def _channel_names(n: int, mask: int) -> tuple[str, ...]:
    named = [s for i, s in enumerate(_SPEAKERS) if mask >> i & 1]
    if len(named) == n:
        return tuple(named)
    return tuple(f"ch{i}" for i in range(n))


def read_wav_layout(fh: IO[bytes], path: str) -> WavLayout:
    """Walk the RIFF chunks of an open WAV file up to its data chunk.

    Raises
    ------
    CaptureFormatError
        Not RIFF/WAVE, no or an unsupported ``fmt `` chunk, a zero rate or channel count,
        or no data chunk.
    """
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise CaptureFormatError(path, "byte 0", "a RIFF/WAVE header", repr(head[:12]))
    pos = 12
    kind = None
    for _ in range(_MAX_CHUNKS):
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            break
        cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"fmt ":
            body = fh.read(min(clen, 256))
            kind = _fmt_kind(body)
            if kind is None:
                tag = struct.unpack("<H", body[:2])[0] if len(body) >= 2 else -1
                bits = struct.unpack("<H", body[14:16])[0] if len(body) >= 16 else -1
                raise CaptureFormatError(
                    path, f"byte {pos}", "a fmt chunk of 8/16/24/32-bit PCM or 32/64-bit float "
                    "(format 1, 3 or extensible)", f"format {tag:#x}, {bits}-bit")
        elif cid == b"data":
            if kind is None:
                raise CaptureFormatError(path, f"byte {pos}", "a fmt chunk before the data "
                                         "chunk", "a data chunk first")
            _tag, ch, rate, bits, mask = kind
            if ch < 1 or rate < 1:
                raise CaptureFormatError(path, "fmt chunk", "at least 1 channel and a sample "
                                         "rate > 0", f"{ch} channels, {rate} Hz")
            avail = size - (pos + 8)
            unknown = clen in (0, 0xFFFFFFFF)
            data_bytes = avail if unknown else min(clen, avail)
            return WavLayout(rate, ch, bits, _tag == _FLOAT, pos + 8, data_bytes, clen,
                             _channel_names(ch, mask))
        pos += 8 + clen + (clen & 1)
        if pos > size:
            break
    raise CaptureFormatError(path, f"byte {pos}", "a data chunk",
                             "end of file" if kind else "no fmt chunk")


def _decode(raw: bytes, bits: int, is_float: bool, n_ch: int) -> np.ndarray:
    """Interleaved little-endian samples → float32 ``(n, n_ch)`` at full scale ±1."""
    if is_float:
        x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float32) * np.float32(1 / 32768)
    elif bits == 32:
        x = (np.frombuffer(raw, "<i4").astype(np.float64) * (1 / 2**31)).astype(np.float32)
    elif bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8)
             | (b[:, 2].astype(np.int8).astype(np.int32) << 16))
        x = v.astype(np.float32) * np.float32(1 / 2**23)
    else:  # 8-bit PCM is unsigned
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) * np.float32(1 / 128)
    return x.reshape(-1, n_ch)


def sidecar_path(wav_path: str | os.PathLike) -> str:
    """``NAME.wav.json`` beside ``NAME.wav``."""
    return os.fspath(wav_path) + ".json"


def read_sidecar_probe(wav_path: str | os.PathLike) -> Probe | None:
    """The probe in the sidecar of ``wav_path`` (None without a sidecar or without the
    ``ambisense:probe`` key).

    Raises
    ------
    CaptureFormatError
        The sidecar is not valid JSON, not an object, or its probe is malformed.
    """
    side = sidecar_path(wav_path)
    if not os.path.exists(side):
        return None
    try:
        with open(side, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureFormatError(side, "sidecar", "a JSON object {\"ambisense:probe\": {…}}",
                                 f"{type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise CaptureFormatError(side, "sidecar", "a JSON object", type(obj).__name__)
    if PROBE_KEY not in obj:
        return None
    try:
        return probe_from_json(obj[PROBE_KEY], where=f"{side}: {PROBE_KEY}")
    except ProbeError as exc:
        raise CaptureFormatError(side, PROBE_KEY, "a valid probe object", str(exc)) from None


def _check_probe(probe: Probe | None, fs: float, where: str) -> None:
    if probe is not None:
        try:
            probe.check_rate(fs, where)
        except ProbeError as exc:
            raise CaptureFormatError(where, PROBE_KEY, "a probe below Nyquist", str(exc)) from None


# ----------------------------------------------------------------------------- WAV reader
@FORMATS.register("wav")
class WavReader(CaptureReader):
    """WAV audio (PCM 8/16/24/32-bit, float 32/64-bit, WAVE_FORMAT_EXTENSIBLE; any number
    of channels), streamed in chunks of ``chunk_size`` samples, with the probe of the
    ``NAME.wav.json`` sidecar in ``meta["probe"]``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.wav`` file.
    chunk_size : int
        Samples per chunk (default 4096).
    source : str, optional
        Name reported in each chunk.
    """

    name: ClassVar[str] = "wav"
    modality: ClassVar[str] = "audio"
    extensions: ClassVar[tuple[str, ...]] = (".wav", ".wave")
    description: ClassVar[str] = ("WAV audio (PCM 8–32-bit, float, extensible; multichannel) "
                                  "with an optional NAME.wav.json probe sidecar")

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK,
                 source: str | None = None) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= len(head):  # the fmt chunk is (nearly always) in the head
            cid, clen = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
            if cid == b"fmt ":
                return _fmt_kind(head[pos + 8:pos + 8 + min(clen, 64)]) is not None
            if cid == b"data":
                return False
            pos += 8 + clen + (clen & 1)
        return False

    def layout(self) -> WavLayout:
        """The header's layout (reads only the header)."""
        with open(self.path, "rb") as fh:
            return read_wav_layout(fh, self.path)

    def chunks(self) -> Iterator[Frames]:
        with open(self.path, "rb") as fh:
            lay = read_wav_layout(fh, self.path)
            probe = read_sidecar_probe(self.path)
            _check_probe(probe, lay.fs_hz, sidecar_path(self.path))
            meta = {"format": "wav", "probe": probe_to_json(probe) if probe else None,
                    "bits": lay.bits, "sample_format": "float" if lay.is_float else "int"}
            self._count_truncation(lay)
            common = {"fs_hz": float(lay.fs_hz), "modality": "audio", "source": self.source,
                      "channel_names": lay.channel_names, "meta": meta}
            fh.seek(lay.data_offset)
            done = 0
            total = lay.n_frames
            inv = 1.0 / lay.fs_hz
            while done < total:
                n = min(self.chunk_size, total - done)
                raw = fh.read(n * lay.block_align)
                n = len(raw) // lay.block_align
                if n == 0:
                    break
                data = _decode(raw[:n * lay.block_align], lay.bits, lay.is_float,
                               lay.n_channels)
                times = (done + np.arange(n)) * inv
                self.bytes_read = lay.data_offset + done * lay.block_align + len(raw)
                done += n
                yield Frames.prevalidated(common, data=data, times_s=times)

    def _count_truncation(self, lay: WavLayout) -> None:
        where = f"byte {lay.data_offset - 8}"
        if lay.declared_bytes in (0, 0xFFFFFFFF) and lay.data_bytes:
            self.rejects.add(Reject(self.path, where, RejectReason.TRUNCATED,
                                    "a data chunk size in the header",
                                    f"{lay.declared_bytes:#x} (header never finalised; "
                                    f"read the {lay.data_bytes} bytes to the end of the file)"))
        elif lay.data_bytes < lay.declared_bytes:
            self.rejects.add(Reject(self.path, where, RejectReason.TRUNCATED,
                                    f"{lay.declared_bytes} data bytes",
                                    f"{lay.data_bytes} before the end of the file (cut short; "
                                    f"{lay.n_frames} whole frames read)"))
        elif lay.data_bytes % lay.block_align:
            self.rejects.add(Reject(self.path, where, RejectReason.TRUNCATED,
                                    f"a multiple of {lay.block_align} data bytes",
                                    f"{lay.data_bytes} (trailing partial frame dropped)"))


# ----------------------------------------------------------------------------- WAV writer
class WavWriter:
    """Streaming WAV writer: header first, blocks appended, sizes patched on close (a
    ``NAME.wav.json`` sidecar holds the probe when one is given).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.wav``.
    fs_hz : int
        Sample rate (Hz, integer).
    n_channels : int
        Channels.
    subtype : {"int16", "int24", "int32", "float32"}
        Sample encoding. Integers are clipped to full scale; PCM 16-bit mono/stereo uses
        format 1, float format 3, everything else WAVE_FORMAT_EXTENSIBLE.
    probe : Probe, optional
        Written to the sidecar.
    """

    def __init__(self, path: str | os.PathLike, fs_hz: int, n_channels: int, *,
                 subtype: str = "int16", probe: Probe | None = None) -> None:
        if subtype not in WAV_SUBTYPES:
            raise ValueError(f"subtype must be one of {', '.join(WAV_SUBTYPES)}, got {subtype!r}")
        if int(fs_hz) != fs_hz or fs_hz < 1:
            raise ValueError(f"fs_hz must be a positive integer for WAV, got {fs_hz}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if probe is not None:
            probe.check_rate(fs_hz, "write_wav")
        self.path = os.fspath(path)
        self.fs_hz, self.n_channels, self.subtype = int(fs_hz), int(n_channels), subtype
        self.tag, self.bits, self._dtype = WAV_SUBTYPES[subtype]
        self.frames = 0
        self._fh: IO[bytes] | None = open(self.path, "wb")
        self._fh.write(self._header(0))
        side = sidecar_path(self.path)
        if probe is not None:
            with open(side, "w", encoding="utf-8") as fh:
                json.dump({PROBE_KEY: probe_to_json(probe)}, fh, indent=2)
        elif os.path.exists(side):
            os.remove(side)  # a stale sidecar would describe another recording

    def _header(self, data_bytes: int) -> bytes:
        ch, bits = self.n_channels, self.bits
        align = ch * bits // 8
        extensible = self.tag == _PCM and (ch > 2 or bits > 16)
        if extensible:
            mask = (1 << ch) - 1 if ch <= len(_SPEAKERS) else 0
            fmt = struct.pack("<HHIIHHHHI", _EXTENSIBLE, ch, self.fs_hz, self.fs_hz * align,
                              align, bits, 22, bits, mask) + struct.pack("<H", self.tag) + _GUID_TAIL
        else:
            fmt = struct.pack("<HHIIHH", self.tag, ch, self.fs_hz, self.fs_hz * align, align, bits)
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        return (b"RIFF" + struct.pack("<I", len(body) + 8 + data_bytes + (data_bytes & 1))
                + body + b"data" + struct.pack("<I", data_bytes))

    def write(self, samples: np.ndarray) -> None:
        """Append ``samples`` (float ``(n, n_channels)`` or ``(n,)`` for mono, full scale ±1)."""
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"samples must be (n, {self.n_channels}), got {x.shape}")
        self._fh.write(encode_pcm(x, self.subtype))
        self.frames += len(x)

    def close(self) -> None:
        """Patch the sizes into the header and close the file."""
        if self._fh is None:
            return
        n = self.frames * self.n_channels * self.bits // 8
        if n & 1:
            self._fh.write(b"\x00")
        self._fh.seek(0)
        self._fh.write(self._header(n))
        self._fh.close()
        self._fh = None

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_pcm(x: np.ndarray, subtype: str) -> bytes:
    """Float samples (full scale ±1, any shape) → little-endian bytes of ``subtype``."""
    _tag, bits, dtype = WAV_SUBTYPES[subtype]
    if subtype == "float32":
        return np.asarray(x, "<f4").tobytes()
    full = 2 ** (bits - 1)
    v = np.clip(np.round(np.asarray(x, np.float64) * full), -full, full - 1).astype(np.int64)
    if dtype is not None:
        return v.astype(dtype).tobytes()
    v = v.astype("<i4").reshape(-1, 1).view(np.uint8)[:, :3]  # 24-bit: low three bytes
    return np.ascontiguousarray(v).tobytes()


def write_wav(path: str | os.PathLike, samples: np.ndarray, fs_hz: float, *,
              probe: Probe | None = None, subtype: str = "int16") -> None:
    """Write ``samples`` (float ``(n, n_channels)`` or ``(n,)``, full scale ±1) as a WAV
    file, with the probe in ``NAME.wav.json`` when given (see :class:`WavWriter`)."""
    x = np.asarray(samples)
    n_ch = 1 if x.ndim == 1 else x.shape[1]
    with WavWriter(path, int(round(fs_hz)), n_ch, subtype=subtype, probe=probe) as w:
        for i in range(0, len(x), 1 << 16):
            w.write(x[i:i + (1 << 16)])


# ----------------------------------------------------------------------------- SigMF
_DATATYPE_RE = re.compile(rb'"core:datatype"\s*:\s*"([a-z0-9_]+)"')


def _sigmf_pair(path: str) -> tuple[str, str]:
    """(meta path, data path) of either file of a SigMF recording."""
    for ext in (".sigmf-meta", ".sigmf-data"):
        if path.endswith(ext):
            base = path[: -len(ext)]
            return base + ".sigmf-meta", base + ".sigmf-data"
    return path + ".sigmf-meta", path + ".sigmf-data"


def _is_real_audio_datatype(dt: str) -> bool:
    base = dt.split("_")[0]
    return base in SIGMF_AUDIO_DATATYPES and (base.endswith("8") or "_" in dt)


def _sigmf_dtype(dt: str) -> tuple[np.dtype, float, float]:
    """numpy dtype, scale and offset that map a real SigMF sample to full scale ±1."""
    base, _, endian = dt.partition("_")
    order = ">" if endian == "be" else "<"
    bits = int(base[2:])
    kind = base[1]
    if kind == "f":
        return np.dtype(f"{order}f{bits // 8}"), 1.0, 0.0
    full = 2.0 ** (bits - 1)
    if kind == "u":
        return np.dtype(f"{order}u{bits // 8}"), 1 / full, -1.0
    return np.dtype(f"{order}i{bits // 8}"), 1 / full, 0.0


@FORMATS.register("sigmf")
class SigmfAudioReader(CaptureReader):
    """Real-valued SigMF recordings (audio): ``.sigmf-meta`` + ``.sigmf-data``, with the
    probe in the global object and annotations as ground truth (``meta["annotations"]``).

    Parameters
    ----------
    path : str or os.PathLike
        Either file of the pair (or their common base name).
    chunk_size : int
        Samples per chunk (default 4096).
    source : str, optional
        Name reported in each chunk.
    """

    name: ClassVar[str] = "sigmf"
    modality: ClassVar[str] = "audio"
    extensions: ClassVar[tuple[str, ...]] = (".sigmf-meta", ".sigmf-data")
    description: ClassVar[str] = ("SigMF audio (real rf32/ri16/ri32/… datatypes, "
                                  "multichannel) with the probe and annotations")

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK,
                 source: str | None = None) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        self.meta_path, self.data_path = _sigmf_pair(self.path)
        if source is None:
            self.source = os.path.basename(self.meta_path)[: -len(".sigmf-meta")]

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if path.endswith(".sigmf-data"):
            meta, _ = _sigmf_pair(path)
            try:
                with open(meta, "rb") as fh:
                    head = fh.read(1 << 16)
            except OSError:
                return False
        elif not head.lstrip()[:1] == b"{":
            return False
        if b'"global"' not in head and b"core:" not in head:
            return False
        m = _DATATYPE_RE.search(head)
        return bool(m) and _is_real_audio_datatype(m.group(1).decode())

    def _metadata(self) -> dict[str, Any]:
        import sigmf
        from sigmf import SigMFFile

        try:
            with open(self.meta_path, "rb") as fh:
                obj = json.loads(fh.read())
        except FileNotFoundError:
            raise CaptureFormatError(self.meta_path, "file", "the .sigmf-meta of the recording",
                                     "no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CaptureFormatError(self.meta_path, "JSON", "SigMF metadata (a JSON object)",
                                     f"{type(exc).__name__}: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("global"), dict):
            raise CaptureFormatError(self.meta_path, "top level", "an object with \"global\"",
                                     str(obj)[:60])
        try:
            sf = SigMFFile(metadata=obj, skip_checksum=True)
        except (sigmf.error.SigMFError, ValueError, KeyError, TypeError) as exc:
            raise CaptureFormatError(self.meta_path, "metadata", "valid SigMF metadata",
                                     f"{type(exc).__name__}: {exc}") from None
        glob = sf.get_global_info()
        dt = str(glob.get("core:datatype", ""))
        if not _is_real_audio_datatype(dt):
            raise CaptureFormatError(self.meta_path, "global core:datatype",
                                     "a real audio datatype (" + ", ".join(
                                         SIGMF_AUDIO_DATATYPES) + ")", repr(dt))
        fs = glob.get("core:sample_rate")
        if not isinstance(fs, (int, float)) or not fs > 0:
            raise CaptureFormatError(self.meta_path, "global core:sample_rate",
                                     "a sample rate > 0 Hz", repr(fs))
        n_ch = glob.get("core:num_channels", 1)
        if not isinstance(n_ch, int) or n_ch < 1:
            raise CaptureFormatError(self.meta_path, "global core:num_channels",
                                     "an integer >= 1", repr(n_ch))
        probe = None
        if PROBE_KEY in glob:
            try:
                probe = probe_from_json(glob[PROBE_KEY], where=f"{self.meta_path}: {PROBE_KEY}")
            except ProbeError as exc:
                raise CaptureFormatError(self.meta_path, f"global {PROBE_KEY}",
                                         "a valid probe object", str(exc)) from None
            _check_probe(probe, float(fs), self.meta_path)
        caps = sf.get_captures()
        t0 = None
        if caps and isinstance(caps[0].get("core:datetime"), str):
            try:
                t0 = datetime.fromisoformat(caps[0]["core:datetime"].replace("Z", "+00:00"))
            except ValueError:
                t0 = None
        anns = [_annotation(a, float(fs)) for a in sf.get_annotations()]
        return {"datatype": dt, "fs": float(fs), "n_ch": n_ch, "probe": probe, "t0": t0,
                "annotations": anns, "offset": int(glob.get("core:header_bytes", 0) or 0),
                "description": glob.get("core:description")}

    def annotations(self) -> list[dict[str, Any]]:
        """The recording's annotations (ground truth) as plain dicts (see the module)."""
        return self._metadata()["annotations"]

    def chunks(self) -> Iterator[Frames]:
        md = self._metadata()
        dtype, scale, offset = _sigmf_dtype(md["datatype"])
        n_ch, fs = md["n_ch"], md["fs"]
        frame_bytes = dtype.itemsize * n_ch
        try:
            fh = open(self.data_path, "rb")
        except FileNotFoundError:
            raise CaptureFormatError(self.data_path, "file", "the .sigmf-data of the recording",
                                     "no such file") from None
        with fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell() - md["offset"]
            total, extra = divmod(max(size, 0), frame_bytes)
            if extra:
                self.rejects.add(Reject(self.data_path, f"byte {md['offset'] + total * frame_bytes}",
                                        RejectReason.TRUNCATED,
                                        f"whole samples of {frame_bytes} bytes "
                                        f"({n_ch} × {md['datatype']})",
                                        f"{extra} trailing bytes (dropped)"))
            meta = {"format": "sigmf", "probe": probe_to_json(md["probe"]) if md["probe"] else None,
                    "bits": dtype.itemsize * 8,
                    "sample_format": "float" if dtype.kind == "f" else "int",
                    "datatype": md["datatype"], "annotations": md["annotations"]}
            if md["description"]:
                meta["description"] = md["description"]
            common = {"fs_hz": fs, "modality": "audio", "source": self.source,
                      "channel_names": tuple(f"ch{i}" for i in range(n_ch)), "t0": md["t0"],
                      "meta": meta}
            fh.seek(md["offset"])
            done = 0
            while done < total:
                n = min(self.chunk_size, total - done)
                raw = fh.read(n * frame_bytes)
                n = len(raw) // frame_bytes
                if n == 0:
                    break
                x = np.frombuffer(raw[:n * frame_bytes], dtype).reshape(n, n_ch)
                if dtype.kind == "f":
                    data = x.astype(np.float32)
                else:
                    data = (x.astype(np.float64) * scale + offset).astype(np.float32)
                times = (done + np.arange(n)) / fs
                done += n
                self.bytes_read = md["offset"] + done * frame_bytes
                yield Frames.prevalidated(common, data=data, times_s=times)


def _annotation(a: Mapping[str, Any], fs: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in a.items():
        out[k.split(":", 1)[1] if k.startswith(("core:", "ambisense:")) else k] = v
    start = int(a.get("core:sample_start", 0))
    count = a.get("core:sample_count")
    out["start_s"] = start / fs
    out["duration_s"] = None if count is None else int(count) / fs
    return out


class SigmfWriter:
    """Streaming SigMF writer: samples appended to ``BASE.sigmf-data`` (SHA-512 computed
    on the way), ``BASE.sigmf-meta`` written on close, validated by the ``sigmf`` package.

    Parameters
    ----------
    base_path : str or os.PathLike
        Output path without extension (a ``.sigmf-meta``/``.sigmf-data`` suffix is removed).
    fs_hz : float
        Sample rate.
    n_channels : int
        Interleaved channels.
    datatype : str
        A real SigMF datatype (``rf32_le`` default, ``ri16_le``, ``ri32_le`` …).
    probe : Probe, optional
        Stored as ``"ambisense:probe"`` in the global object.
    annotations : sequence of mapping, optional
        Ground truth: each with ``sample_start`` and ``sample_count`` (or ``start_s`` and
        ``duration_s``), ``label`` (→ ``core:label``), ``comment`` (→ ``core:comment``);
        keys with a namespace are kept, other keys go under ``ambisense:``.
    description : str, optional
        ``core:description``.
    datetime_utc : datetime, optional
        ``core:datetime`` of the first sample.
    """

    def __init__(self, base_path: str | os.PathLike, fs_hz: float, n_channels: int, *,
                 datatype: str = "rf32_le", probe: Probe | None = None,
                 annotations: Sequence[Mapping[str, Any]] | None = None,
                 description: str | None = None, datetime_utc: datetime | None = None) -> None:
        if not _is_real_audio_datatype(datatype):
            raise ValueError(f"datatype must be a real SigMF datatype ({', '.join(SIGMF_AUDIO_DATATYPES)}"
                             f" with _le/_be), got {datatype!r}")
        if probe is not None:
            probe.check_rate(fs_hz, "write_sigmf")
        self.meta_path, self.data_path = _sigmf_pair(os.fspath(base_path))
        self.fs_hz, self.n_channels, self.datatype = float(fs_hz), int(n_channels), datatype
        self.probe, self.description, self.datetime_utc = probe, description, datetime_utc
        self.annotations = list(annotations or [])
        self._dtype, self._scale, self._offset = _sigmf_dtype(datatype)
        self._sha = hashlib.sha512()
        self.frames = 0
        self._fh: IO[bytes] | None = open(self.data_path, "wb")

    def write(self, samples: np.ndarray) -> None:
        """Append float samples ``(n, n_channels)`` (or ``(n,)`` mono) at full scale ±1."""
        if self._fh is None:
            raise ValueError(f"{self.data_path}: writer is closed")
        x = np.asarray(samples, np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"samples must be (n, {self.n_channels}), got {x.shape}")
        if self._dtype.kind == "f":
            raw = x.astype(self._dtype).tobytes()
        else:
            info = np.iinfo(self._dtype)
            v = np.round((x - self._offset) / self._scale)
            raw = np.clip(v, info.min, info.max).astype(self._dtype).tobytes()
        self._sha.update(raw)
        self._fh.write(raw)
        self.frames += len(x)

    def close(self) -> None:
        """Write the metadata (validated) and close the data file."""
        if self._fh is None:
            return
        self._fh.close()
        self._fh = None
        from sigmf import SigMFFile

        glob: dict[str, Any] = {
            "core:datatype": self.datatype, "core:sample_rate": self.fs_hz,
            "core:num_channels": self.n_channels, "core:version": _sigmf_version(),
            "core:sha512": self._sha.hexdigest(), "core:recorder": "ambisense",
        }
        if self.description:
            glob["core:description"] = self.description
        if self.probe is not None:
            glob["core:extensions"] = [{"name": "ambisense", "version": "1.0.0",
                                        "optional": True}]
            glob[PROBE_KEY] = probe_to_json(self.probe)
        cap: dict[str, Any] = {"core:sample_start": 0}
        if self.datetime_utc is not None:
            cap["core:datetime"] = self.datetime_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        anns = sorted((_sigmf_annotation(a, self.fs_hz) for a in self.annotations),
                      key=lambda a: a["core:sample_start"])
        obj = {"global": glob, "captures": [cap], "annotations": anns}
        sf = SigMFFile(metadata=obj, skip_checksum=True)
        sf.validate()
        with open(self.meta_path, "w", encoding="utf-8") as fh:
            sf.dump(fh, pretty=True)

    def __enter__(self) -> SigmfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sigmf_version() -> str:
    import sigmf

    return str(getattr(sigmf, "__specification__", "1.2.0"))


def _sigmf_annotation(a: Mapping[str, Any], fs: float) -> dict[str, Any]:
    a = dict(a)
    if "sample_start" in a:
        start = int(a.pop("sample_start"))
        count = a.pop("sample_count", None)
        a.pop("start_s", None)
        a.pop("duration_s", None)
    else:
        start = int(round(float(a.pop("start_s")) * fs))
        dur = a.pop("duration_s", None)
        count = None if dur is None else int(round(float(dur) * fs))
    out: dict[str, Any] = {"core:sample_start": start}
    if count is not None:
        out["core:sample_count"] = int(count)
    for k, v in a.items():
        if k in ("label", "comment", "generator", "uuid", "freq_lower_edge", "freq_upper_edge"):
            out[f"core:{k}"] = v
        elif ":" in k:
            out[k] = v
        else:
            out[f"ambisense:{k}"] = v
    return out


def write_sigmf(base_path: str | os.PathLike, samples: np.ndarray, fs_hz: float, *,
                probe: Probe | None = None,
                annotations: Sequence[Mapping[str, Any]] | None = None,
                datatype: str = "rf32_le", description: str | None = None) -> tuple[str, str]:
    """Write ``samples`` (float ``(n, n_channels)`` or ``(n,)``, full scale ±1) as a SigMF
    recording (see :class:`SigmfWriter`).

    Returns
    -------
    (str, str)
        Paths of the ``.sigmf-meta`` and ``.sigmf-data`` files.
    """
    x = np.asarray(samples)
    n_ch = 1 if x.ndim == 1 else x.shape[1]
    with SigmfWriter(base_path, fs_hz, n_ch, datatype=datatype, probe=probe,
                     annotations=annotations, description=description) as w:
        for i in range(0, len(x), 1 << 16):
            w.write(x[i:i + (1 << 16)])
    return w.meta_path, w.data_path
