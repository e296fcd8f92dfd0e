"""Adversarial objectives, one file each; penalties are composable pure functions."""
