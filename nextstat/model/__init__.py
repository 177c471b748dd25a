"""HistFactory model specification: loading, validation and model building."""
