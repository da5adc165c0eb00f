"""Where sealed snapshots live, behind one interface."""
