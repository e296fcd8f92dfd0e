"""Generator/discriminator pairs, one file per architecture family."""
