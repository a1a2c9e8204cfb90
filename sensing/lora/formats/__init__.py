"""LoRa IQ capture formats: SigMF with a complex datatype (:mod:`.sigmf_iq`) and raw
complex64 files with their parameters given as reader options (:mod:`.raw_iq`)."""
