"""ganrun: config-driven GAN experiments."""

__version__ = "0.1.0"
