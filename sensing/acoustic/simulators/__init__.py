"""Acoustic sonar simulators (``ambisense simulate acoustic-sonar``, ``acoustic-blink``,
``acoustic-cabin``): a speaker plays the probe, a microphone records its echoes from a
room or a car cabin with a breathing person, a blinking face or an occupant (see
:mod:`sensing.acoustic.simulators.scenes` and the physics in
:mod:`sensing.acoustic.simulators.render`; parameters in ``docs/acoustic-sonar.md``)."""
