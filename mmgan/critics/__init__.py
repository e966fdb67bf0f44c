"""Beyond the paper: margins of trained GAN critics (measurement, certification, report); the chapter that shows
them is in the chapters layer."""
