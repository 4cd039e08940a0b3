"""Towers, heads, losses and the LightningModule of the joint embedding."""
