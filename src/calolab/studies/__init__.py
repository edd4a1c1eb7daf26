"""Studies: each writes one run folder (config, metrics JSON, tables, figures)."""
