"""The learning side: trainer jobs that read episode windows from the LightningStore, train
by RL, APO or SFT, and publish new versions on the control topic. (Lands after the streams.)"""
