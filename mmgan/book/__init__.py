"""The presentation toolkit of the chapters: glue, figures, papermill parameters, the reproduction status and the
generated GAN table chapters."""
