"""Acoustic pipelines (each module registers one in ``agent.pipelines.PIPELINES``):
``breath_sounds`` (microphone only), ``cw_motion`` (CW tone Doppler) and the sonar ones.
Every one accepts ``audio`` and decides from the content (:mod:`sensing.acoustic.content`)
whether the recording is its own."""
