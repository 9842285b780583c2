"""Compiled operators that make CPU training fast (see `ppipe.ops.onednn`)."""
