"""Analysis over recordings: queries, time travel, diffs, expectations, findings."""
