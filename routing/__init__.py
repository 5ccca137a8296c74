"""Config model and loader, route matching, broker topology and dead-letter tools."""
