"""Datasets: the embedded default, toy 2-D mixtures, torchvision files on disk, image folders."""
