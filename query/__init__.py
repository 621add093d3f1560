"""Query stage: the Quart app serving the Jaeger-, Zipkin- and Tempo-compatible and native APIs and the UI."""
