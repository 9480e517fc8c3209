"""The network (IRN, official layout), loading and saving its weights, tiled inference."""
