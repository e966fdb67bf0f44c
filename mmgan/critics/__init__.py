"""Beyond the paper: margins of trained GAN critics (measurement, certification, report, chapter)."""
