"""Fulmen: continual training of production AI agents from their own traffic."""
