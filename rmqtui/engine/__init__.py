"""The fleet engine: config, topics, broker, workers, supervisor and stats. Never imports Textual."""
