"""Int8 for TFLite through PT2E: BN-free graph, LiteRT's int8 annotation and kernel arithmetic."""
