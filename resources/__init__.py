"""Bundled models and the sample image (package data; see LICENSES.md).

Shipped inside the distribution, so an installed ``liif-zoom`` finds them through
``importlib.resources`` (see :mod:`core.defaults`) without a checkout.
"""
