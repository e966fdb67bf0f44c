"""§5.2–§5.3: the sigmoid toy, a toy GAN, robustness, and the training of small classifiers."""
