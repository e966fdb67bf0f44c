"""Data sets used by the chapters: the swiss roll of Table 1 and the image sets of Tables 2–8."""

from mmgan.data.images import DATASETS, load_images
from mmgan.data.swiss_roll import SCALE_CONVENTIONS, STANDARDIZED, scale_factor, swiss_roll

__all__ = ["DATASETS", "SCALE_CONVENTIONS", "STANDARDIZED", "load_images", "scale_factor", "swiss_roll"]
