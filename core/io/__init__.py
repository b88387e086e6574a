"""Images in and out: the format table (:mod:`~core.io.formats`), decoding with its size checks
(:mod:`~core.io.imageio`), decoded integers read a window at a time (:mod:`~core.io.pixels`),
colour profiles (:mod:`~core.io.colour`), and the codecs Pillow lacks or gets wrong
(:mod:`~core.io.png`, :mod:`~core.io.jxl`)."""
