"""What the cell states encode, and where: PCA, axis measures, the spatial null."""
