"""UWB simulators (``ambisense simulate uwb-activity``, ``uwb-breathing``).

:mod:`~sensing.uwb.simulators.body` (the person's kinematics),
:mod:`~sensing.uwb.simulators.cir` (room, devices, CIR synthesis, streamed) and
:mod:`~sensing.uwb.simulators.activity` (the registered simulators and writers).
See ``docs/uwb-fall.md``.
"""
