"""The pure core: messages, validation. No I/O, no clock, no randomness."""
