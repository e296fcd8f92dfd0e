"""Methods: how one training step goes (gan.py today; pix2pix, cyclegan, ... next to it)."""
