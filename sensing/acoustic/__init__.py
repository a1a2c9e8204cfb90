"""Acoustic sensing: microphone recordings (WAV, SigMF), the ``ambisense:probe`` a speaker
plays (FMCW chirps or CW tones), live sound cards, and the pipelines that run on them
(breath sounds, CW motion/Doppler, FMCW/CW sonar). See ``docs/acoustic.md``.

Importing this package is cheap: the modules import scipy, sigmf and sounddevice only
where they need them.
"""
