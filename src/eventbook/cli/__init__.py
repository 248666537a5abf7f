"""The eventbook command line."""
