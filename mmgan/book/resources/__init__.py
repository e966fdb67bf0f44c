"""Data files shipped with mmgan: the paper's numbers and the reproduction status."""
