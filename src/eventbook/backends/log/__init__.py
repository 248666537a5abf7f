"""The embedded log: segment files of framed records, a position index, a stream index.

The format is specified in docs/file-format.md.
"""
