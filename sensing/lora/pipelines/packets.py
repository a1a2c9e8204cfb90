"""``lora_packet``: one event per LoRa frame received in an IQ stream."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.lora.receiver import (
    LoraFrame,
    ReceiverParams,
    receiver_of,
    shared_receiver,
    shared_receiver_flush,
)
from sensing.params import param


class LoraPacketParams(ReceiverParams):
    """Options of ``lora_packet``: the receiver's, plus what is reported."""

    bad_crc: bool = param(True, doc="also report frames whose payload CRC fails "
                                    "(crc_ok false)")


@PIPELINES.register("lora_packet")
class LoraPacketPipeline(Pipeline):
    """Decodes LoRa frames (explicit header, CRC) from complex IQ: ``lora_packet`` events
    with ``value`` = payload length (bytes) and ``payload_hex``, ``crc_ok``, ``sf``,
    ``cr``, ``snr_db``, ``cfo_hz``, ``rssi_db``, ``sco_ppm``, ``end_s``."""

    name = "lora_packet"
    Params = LoraPacketParams
    modalities = ("lora_iq",)
    default = True
    event_types = ("lora_packet",)
    description = "LoRa frames decoded from IQ (preamble sync, CFO/SCO, header, CRC)"
    home_assistant = {"lora_packet": {"component": "sensor", "icon": "mdi:radio-tower",
                                      "unit_of_measurement": "B"}}

    def __init__(self, params: Any = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        fields = ReceiverParams.model_fields
        self._rx_params = ReceiverParams(**{k: getattr(self.params, k) for k in fields})

    def push(self, frames: Frames) -> list[Detection]:
        return self._events(shared_receiver(self, frames, self._rx_params))

    def flush(self) -> list[Detection]:
        return self._events(shared_receiver_flush(self, self._rx_params))

    def _events(self, found: list[LoraFrame]) -> list[Detection]:
        out = []
        for f in found:
            if not f.header_ok:  # synchronised, header failed: chirps for sensing only
                continue
            if f.crc_ok is False and not self.params.bad_crc:
                continue
            conf = 1.0 if f.crc_ok else (0.5 if f.crc_ok is None else 0.1)
            out.append(Detection("lora_packet", round(f.start_s, 6), len(f.payload), "B", conf, {
                "payload_hex": f.payload.hex(), "crc_ok": f.crc_ok, "sf": f.sf, "cr": f.cr,
                "bw_hz": f.bw_hz, "snr_db": round(f.snr_db, 2), "cfo_hz": round(f.cfo_hz, 1),
                "rssi_db": round(f.rssi_db, 2), "sco_ppm": round(f.sco_ppm, 3),
                "end_s": round(f.end_s, 6),
            }))
        return out

    def quiet_reason(self) -> str | None:
        rx = receiver_of(self, self._rx_params)
        if rx is None:
            return "no IQ samples"
        if rx.problem:
            return rx.problem
        if rx.candidates:
            return f"{rx.candidates} preamble candidate(s), none with a valid header"
        return "no LoRa preamble found"
