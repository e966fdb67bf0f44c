"""What the chapters need to show results: glue, figures, papermill parameters, the paper's numbers and the verdict
rules."""
