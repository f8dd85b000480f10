"""Raw files as users have them -> records; each reader names the file and line of a bad row."""
