"""Share cards, incremental share entry and the recovery identity."""
