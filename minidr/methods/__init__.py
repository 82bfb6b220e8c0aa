"""Methods: one module per technique, each importing only core/ to training/, never
another method."""
