"""Data files of the package: the paper's numbers (``paper_results.yaml``)."""
