"""The chapter facades: one module per chapter that loads its study, judges it and shows it (glue, figures, Markdown).

Only this layer (and the presentation toolkit of :mod:`mmgan.book` it uses) may import IPython or matplotlib display
code; the engines (:mod:`mmgan.table1`, :mod:`mmgan.gan`, :mod:`mmgan.critics`) import nothing from it or from the
book (``tests/test_layers.py``).

- :mod:`mmgan.chapters.gan_tables`       the seven GAN table chapters (Tables 2–8)
- :mod:`mmgan.chapters.gan_zero_centred` the zero-centred GAN study
- :mod:`mmgan.chapters.critic_margins`   the critic-margins chapter
- :mod:`mmgan.chapters.zero_centred`     the zero-centred chapter and the margins of its critics
"""
