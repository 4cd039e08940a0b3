"""Content clusters in the latent space, community profiles over them, names and metrics."""
