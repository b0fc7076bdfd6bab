"""The stream side: spans, rewards and rollout events joined into scored episodes, written
exactly once to the LightningStore. (The Faust application lands here next.)"""
