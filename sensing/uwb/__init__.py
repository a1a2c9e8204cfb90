"""UWB channel impulse responses (DW1000/DW3000) and pulsed-radar baseband frames.

Plug-in modules (found by the registries): ``formats`` (DecaRanging CIR logs, Acconeer
HDF5, ``.npz`` replay), ``sources`` (``uwb_serial``), ``pipelines`` (breathing, presence,
LOS/NLOS, falls). Signal processing: :mod:`sensing.uwb.conditioning` (alignment,
normalisation, clutter removal, range-time map, micro-Doppler, range tracking),
:mod:`sensing.uwb.breathing`, :mod:`sensing.uwb.presence`, :mod:`sensing.uwb.los`.
See ``docs/uwb.md``.
"""
