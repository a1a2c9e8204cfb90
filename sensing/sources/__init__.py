"""Live sources: serial ports, UDP sockets, sound cards, growing files.

A live source yields the same :class:`~sensing.frames.Frames` chunks as a file reader
(``chunks()``), so everything downstream runs unchanged on live data and on replays.
"""
