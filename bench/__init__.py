"""kalad's benchmarks: measure a real kalad from outside, each figure beside a baseline.

Run with ``make bench`` or ``python -m bench [lateness firerate api scale] [--quick]``.
Every figure is taken in the same run as its baseline (a bare spawn loop, APScheduler 3.11,
a bare falcon+waitress app, ...) because this machine is small and noisy: the numbers are
printed and saved, never asserted. Results go to ``bench/results/<timestamp>/``.
"""
