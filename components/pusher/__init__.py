"""Pusher: blessed models only, into numbered TF Serving versions that never collide or show half-copied."""
