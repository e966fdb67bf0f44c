"""Beyond the paper: margins of trained GAN critics (measurement, certification, report; the chapter is
:mod:`mmgan.chapters.critic_margins`)."""
