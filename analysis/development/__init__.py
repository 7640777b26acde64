"""How the body comes to be and comes back: positional information, damage, training dynamics."""
