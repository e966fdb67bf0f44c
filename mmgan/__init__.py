"""mmgan: the executable companion to "Gradient Penalty from a Maximum Margin Perspective".

Modules, one concern each (paper sections in brackets):

- :mod:`mmgan.norms`      dual norms, per-sample gradient norms, smooth max (§3.2, App. B)
- :mod:`mmgan.losses`     margin losses L and GAN critic/generator losses (§2.2, §5.1, App. C)
- :mod:`mmgan.penalties`  gradient penalties g(‖∇f‖_q) (§2.4, §4.1)
- :mod:`mmgan.margins`    Taylor and geometric margins (§3.2, App. D.4)
- :mod:`mmgan.framework`  the objective of eq. 6 (§4.1, §5.1)
- :mod:`mmgan.lipschitz`  Lipschitz constants vs gradient bounds (§5.2.1, App. D.1)
- :mod:`mmgan.paper`      the paper's numbers (one data file) and the reproduction status
"""

from mmgan import framework, lipschitz, losses, margins, norms, paper, penalties, registry

__version__ = "0.1.0"

__all__ = ["framework", "lipschitz", "losses", "margins", "norms", "paper", "penalties", "registry"]
