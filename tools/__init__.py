"""Development tools, not part of the installed app: the soak driver and the screenshots.

Run from a checkout: ``python -m tools.screenshots OUTDIR``; ``bench/soak.py`` drives the soak.
"""
