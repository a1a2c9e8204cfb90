"""The LoRa radio parameters of a recording: the ``ambisense:lora`` object of a SigMF
global (and the LoRa options of the raw IQ reader).

>>> from sensing.lora.params import LoraParams
>>> LoraParams.from_options({"sf": 9}).symbol_s
0.004096
"""

from __future__ import annotations

from typing import Any, Literal

from sensing.params import Params, param

__all__ = ["LoraParams", "LORA_KEY", "lora_from_meta"]

#: Key of the LoRa object in a SigMF global.
LORA_KEY = "ambisense:lora"


class LoraParams(Params):
    """LoRa PHY parameters (``ambisense:lora`` in a SigMF global).

    Every field has a default; a recording states at least ``sf`` and ``bw_hz``.
    """

    sf: int = param(7, ge=7, le=12, doc="spreading factor (2**sf chips per symbol)")
    bw_hz: Literal[125000, 250000, 500000] = param(
        125000, unit="Hz", doc="LoRa bandwidth (chip rate)")
    sync_word: int = param(0x12, ge=0, le=255,
                           doc="sync word (0x12 private networks, 0x34 LoRaWAN); its two "
                               "nibbles, times 8, are the two sync symbols")
    preamble_len: int = param(8, ge=6, le=65535,
                              doc="number of preamble up-chirps (before the 2 sync symbols "
                                  "and 2.25 down-chirps)")
    cr: int = param(1, ge=1, le=4, doc="coding rate 4/(4+cr) of the payload (Hamming)")
    has_crc: bool = param(True, doc="payload followed by a CRC-16 (explicit header: "
                                    "the header says; this is for implicit header)")
    implicit_header: bool = param(False, doc="no explicit header (then payload_len, cr and "
                                             "has_crc must be known)")
    payload_len: int = param(0, ge=0, le=255,
                             doc="payload length in bytes for implicit-header frames")
    ldro: bool | None = param(None, doc="low data rate optimisation; None: on when a "
                                        "symbol lasts more than 16 ms (as SX127x/SX126x)")
    channel: int | None = param(None, ge=0, doc="receive channel to decode; None: the one "
                                               "with the strongest preamble")

    @property
    def n_chips(self) -> int:
        """Chips (and FFT bins) per symbol, 2**sf."""
        return 1 << self.sf

    @property
    def symbol_s(self) -> float:
        """Symbol duration in seconds, 2**sf / bw."""
        return self.n_chips / self.bw_hz

    @property
    def ldro_on(self) -> bool:
        """Whether low data rate optimisation is used (explicit or automatic)."""
        if self.ldro is not None:
            return self.ldro
        return self.symbol_s > 0.016


def lora_from_meta(obj: Any) -> LoraParams | None:
    """:class:`LoraParams` from an ``ambisense:lora`` dict (unknown keys ignored), or None
    when ``obj`` is not a dict.

    Raises
    ------
    sensing.params.OptionError
        A known field has a bad value.
    """
    if not isinstance(obj, dict):
        return None
    known = {k: v for k, v in obj.items() if k in LoraParams.model_fields}
    return LoraParams.from_options(known, where=LORA_KEY)
