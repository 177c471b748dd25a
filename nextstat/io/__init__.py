"""Input formats: every door leads to a pyhf-style workspace and a HistFactoryModel."""
