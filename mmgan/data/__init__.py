"""Data sets used by the chapters: the swiss roll of Table 1 and the image sets of Tables 2–8."""

from mmgan.data.images import DATASETS, load_images
from mmgan.data.swiss_roll import STANDARDIZED, swiss_roll

__all__ = ["DATASETS", "STANDARDIZED", "load_images", "swiss_roll"]
