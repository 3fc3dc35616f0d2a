"""Example study: classify sequences of feature vectors with swappable aggregation, classifier and schedule."""
