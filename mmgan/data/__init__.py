"""Data sets used by the chapters."""

from mmgan.data.swiss_roll import STANDARDIZED, swiss_roll

__all__ = ["STANDARDIZED", "swiss_roll"]
