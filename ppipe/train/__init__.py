"""Distributed training on Ray Train with a Paddle collective backend of ppipe's own."""
