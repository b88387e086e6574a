"""Model zoo: encoders (EDSR-baseline, RDN), the MLP decoder and LIIF itself.

Importing this package registers every model with :mod:`core.registry`.
"""
from core.models import edsr, rdn, mlp, liif, lmf  # noqa: F401
from core.models.liif import LIIF
from core.models.lmf import LMF

__all__ = ["LIIF", "LMF"]
