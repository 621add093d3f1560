"""Analytics: RED metrics computed at ingest (``red``), their series store (``series``) and the
log-linear latency histograms they are made of (``histogram``).  See docs/analytics.md."""
from collector.analytics.histogram import ALPHA, GAMMA, MIN_NS, NBUCKETS, bucket_of, bucket_value, quantiles
from collector.analytics.red import RedMetrics
from collector.analytics.series import Point, SeriesStore

__all__ = ["ALPHA", "GAMMA", "MIN_NS", "NBUCKETS", "bucket_of", "bucket_value", "quantiles",
           "RedMetrics", "Point", "SeriesStore"]
