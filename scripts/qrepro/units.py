"""Byte units, one home: MB means 1024² bytes throughout, as in the paper."""
MB = 1024 ** 2
GIB = 1024 ** 3
