"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") in
plain PyTorch: no custom CUDA ops, so it runs on CPU, under torch.compile, with double backward.

ops.py (FIR resampling, equalized-lr layers), mapping.py, synthesis.py, generator.py and
discriminator.py each hold one part; sizes.py says which shapes it builds.
"""

from ganrun.models.stylegan2.discriminator import StyleGAN2Discriminator
from ganrun.models.stylegan2.generator import StyleGAN2Generator

# the public names: the YAML targets and type names read ganrun.models.stylegan2.<Class>
StyleGAN2Discriminator.__module__ = __name__
StyleGAN2Generator.__module__ = __name__

__all__ = ["StyleGAN2Discriminator", "StyleGAN2Generator"]
