"""The report pipelines (Settings -> run -> Result -> write -> summary_lines) and the page writer."""
