"""Model zoo: encoders (EDSR-baseline, RDN), the MLP decoder and LIIF itself.

Importing this package registers every model with :mod:`core.models.registry`.
"""
from core.models import edsr, implicit, liif, lmf, mlp, rdn  # noqa: F401
from core.models.implicit import LocalImplicit
from core.models.liif import LIIF
from core.models.lmf import LMF

__all__ = ["LocalImplicit", "LIIF", "LMF"]
