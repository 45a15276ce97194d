"""The daily report of the monitoring host: a day of Prometheus's own
series read back through its query API (promapi), shaped into sections
(daily), written as an HTML page with small plots and as a plain-text
summary (render), and sent to the report's receiver (deliver)."""
