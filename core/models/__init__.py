"""Model zoo: encoders (EDSR-baseline, RDN), the MLP decoder, LIIF, LMF and LMF with LIIF at edges.

Importing this package registers every model with :mod:`core.models.registry`.
"""
from core.models import edges, edsr, implicit, liif, lmf, mlp, rdn  # noqa: F401
from core.models.edges import LMFEdges
from core.models.implicit import LocalImplicit
from core.models.liif import LIIF
from core.models.lmf import LMF

__all__ = ["LocalImplicit", "LIIF", "LMF", "LMFEdges"]
