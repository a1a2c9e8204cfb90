"""LoRa: complex IQ recordings (SigMF, raw complex64), the LoRa PHY (modem, receiver) and
the pipelines and simulators built on them.

Plug-in modules found by the registries: :mod:`sensing.lora.formats` (``sigmf_iq``,
``lora_raw``), :mod:`sensing.lora.pipelines` (``lora_packet`` …),
:mod:`sensing.lora.simulators` (``lora-packets`` …). The signal processing lives in
:mod:`sensing.lora.modem` (chirps and the transmitter chain) and
:mod:`sensing.lora.receiver` (synchronisation and decoding). Importing this package is
cheap: nothing below is imported until used.
"""
