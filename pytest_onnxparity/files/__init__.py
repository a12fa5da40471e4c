"""Files the run writes: atomically, and only where the user said."""
