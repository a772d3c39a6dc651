"""Drop-in replacements for the op modules other code bases import."""
