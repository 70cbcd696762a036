"""UniTAF data stages: plain, Ray-free functions that turn audio-to-face corpora into shards."""
