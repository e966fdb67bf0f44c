"""Data files of the book: the reproduction status and the template of the GAN table chapters."""
