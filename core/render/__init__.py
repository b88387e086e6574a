"""From an image to pixels: the latent, encoded lazily in tiles (:mod:`~core.render.encoding`),
the models' fast renderer (:mod:`~core.render.renderer`), bicubic, nearest and MATLAB's
imresize (:mod:`~core.render.resample`), and the one table from a method to its renderer
(:mod:`~core.render.methods`)."""
