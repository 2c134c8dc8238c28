"""Reports: leaderboards and comparisons, built from run records only."""
