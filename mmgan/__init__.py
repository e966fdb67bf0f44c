"""mmgan: the executable companion to "Gradient Penalty from a Maximum Margin Perspective".

The package mirrors the book. The top level is the paper's mathematics, one concern per module (paper
sections in brackets):

- :mod:`mmgan.norms`      dual norms, per-sample gradient norms, smooth max (§3.2, App. B)
- :mod:`mmgan.losses`     margin losses L and GAN critic/generator losses (§2.2, §5.1, App. C)
- :mod:`mmgan.penalties`  gradient penalties g(‖∇f‖_q) (§2.4, §4.1)
- :mod:`mmgan.margins`    Taylor and geometric margins, the boundary-distance estimator (§3.2, App. A, D.4)
- :mod:`mmgan.exact`      exact distances to decision boundaries in 2-D (the references of §4.2)
- :mod:`mmgan.framework`  the objective of eq. 6 (§4.1, §5.1)
- :mod:`mmgan.lipschitz`  Lipschitz constants vs gradient bounds (§5.2.1, App. D.1)
- :mod:`mmgan.relativistic` margins of relativistic critics (App. C)
- :mod:`mmgan.mlp`        the small MLPs of the toy and swiss-roll chapters
- :mod:`mmgan.verdicts`   the verdict statistics: paired t intervals, pooled ratios, the verdict words
- :mod:`mmgan.paper`      the paper's published numbers (``mmgan/resources/paper_results.yaml``)

Subpackages, in layers (a layer imports only the layers above it in this list; ``tests/test_layers.py`` checks it,
and that the engines, 3–6, import nothing from the book or the chapters):

1. :mod:`mmgan.base`     registry, randomness, results files, run folders, worker processes, lists as users type them
2. the top level         the mathematics, the verdict statistics and the paper's numbers above
3. :mod:`mmgan.toys`     §5.2–§5.3: the sigmoid toy, a toy GAN, robustness, classifier training
4. :mod:`mmgan.table1`   §4.2, App. A: Table 1 on the swiss roll
5. :mod:`mmgan.gan`      §6, App. B: the GAN engine, Tables 2–8 and the propositions they judge
6. :mod:`mmgan.critics`  beyond the paper: margins of GAN critics
7. :mod:`mmgan.book`     the presentation toolkit: glue, figures, papermill parameters, the reproduction status
8. :mod:`mmgan.chapters` the chapter facades (the only layer, with the book, that shows things)
9. :mod:`mmgan.cli`      the ``mmgan`` command
"""

from mmgan import framework, lipschitz, losses, margins, norms, penalties

__version__ = "0.1.0"

__all__ = ["framework", "lipschitz", "losses", "margins", "norms", "penalties"]
