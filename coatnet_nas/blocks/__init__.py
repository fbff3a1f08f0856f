"""Building blocks: conv stem, MBConv + SE, 2-D relative-attention Transformer."""
